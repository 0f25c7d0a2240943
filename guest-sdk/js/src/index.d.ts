// Types of veneer-sdk (src/index.js). The records (Category, Sale,
// CommissionDecision, …) are generated from the WIT into `types/`.

import type {
  Category,
  CommissionDecision,
  EmailTemplate,
  Hooks,
  Level,
  Sale,
  SizeChart,
} from "../types/index.js";

export type * from "../types/index.js";

/**
 * A failure the plugin reports on purpose: the host serves the base result and
 * records `code` and `message`. Any other exception ends the call as a trap.
 */
export declare class PluginError extends Error {
  constructor(code: string, message: string);
  /** A stable machine-readable code, for example `bad-settings`. */
  readonly code: string;
}

/** The tenant's key-value data and the run's log. */
export declare class Context {
  /** The value stored under `key`, or `undefined` when absent. */
  kv(key: string): string | undefined;
  /** The keys that start with `prefix`, sorted, at most `limit` (default 100). */
  kvKeys(prefix: string, limit?: number): string[];
  /** Appends a line to the run's log. */
  log(level: Level, message: string): void;
}

/** The values an email template will be rendered with, by variable name. */
export type RenderContext = Record<string, string>;

/**
 * The base of every plugin: constructed once per instance with the parsed
 * settings; each hook returns the base unchanged unless overridden, and only
 * overridden hooks are reported to the host.
 */
export declare class Plugin<S = Record<string, unknown>> {
  constructor(settings: S, ctx: Context);
  /** The tenant's settings, parsed and checked once. */
  readonly settings: S;
  /** Key-value data and logging. */
  readonly ctx: Context;
  /** Changes the category tree; the result must still be a tree. */
  categories(base: Category[]): Category[];
  /** Changes the size charts; every row keeps one value per column. */
  sizeCharts(base: SizeChart[]): SizeChart[];
  /** Decides the commission for one sale line, given the base decision. */
  commission(sale: Sale, base: CommissionDecision): CommissionDecision;
  /** Customises an email template, given the values it will be rendered with. */
  email(template: EmailTemplate, context: RenderContext): EmailTemplate;
}

/** What {@link register} needs besides the class. */
export interface Registration<S> {
  /** The plugin's name, as `describe` reports it. */
  name: string;
  /** The plugin's own version. */
  version: string;
  /** Every setting with its default; the settings JSON may set any of them. */
  defaults?: S;
  /** What the plugin does, for the console (reported from WIT 0.2.0 on). */
  description?: string;
  /** A JSON Schema of the settings (reported from WIT 0.2.0 on). */
  settingsSchema?: object;
}

/** A plugin class: constructed with its settings, optionally parsing them itself. */
export interface PluginClass<S> {
  new (settings: S, ctx: Context): Plugin<S>;
  /** Replaces {@link parseSettings}; throw a `bad-settings` PluginError to refuse. */
  parseSettings?(text: string, defaults: S): S;
}

/** Turns a plugin class into the component's `hooks` export. */
export declare function register<S>(plugin: PluginClass<S>, registration: Registration<S>): Hooks;

/**
 * Parses the settings JSON: an object whose keys are those of `defaults`, each
 * of its default's JSON type; a key left out takes the default.
 */
export declare function parseSettings<S>(text: string, defaults: S): S;

/** `unitPrice × quantity`, in minor units. */
export declare function gross(sale: Sale): bigint;

/** The value of the sale's attribute named `key`. */
export declare function attribute(sale: Sale, key: string): string | undefined;

/**
 * The decision with its fee recomputed from its rate for a line of
 * `grossAmount` (rounded half up, within `minFee..=maxFee`, never above the gross).
 */
export declare function refee(decision: CommissionDecision, grossAmount: bigint): CommissionDecision;
