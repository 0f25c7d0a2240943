// veneer-sdk for JavaScript and TypeScript: the plugin contract as a base class
// with defaults, and the glue that turns one class into the component's
// `hooks` export. The contract itself is the WIT in `wit/`; the record types are
// generated from it into `types/` (`npm run types`). Import names here carry no
// WIT version: the build (`bin/build.mjs`) pins them to the one this package
// targets (`veneer.wit` in package.json).

import { get as settingsText } from "veneer:plugin/settings";
import { get as kvGet, listKeys as kvListKeys } from "veneer:plugin/kv";
import { write as logWrite } from "veneer:plugin/log";

/** The hooks a plugin can implement, as WIT names them. */
const HOOKS = {
  categories: "categories",
  sizeCharts: "size-charts",
  commission: "commission",
  email: "email",
  // WIT 0.2.0 and later; a 0.1.0 build never reports it (no 0.1.0 plugin can
  // override it meaningfully: the host never calls it).
  productCategory: "product-category",
};

/**
 * A failure the plugin reports on purpose: the host serves the base result and
 * records `code` and `message` against the installation. Throw it from a hook
 * or from the constructor. Any other exception ends the call as a trap, like a
 * panic in Rust.
 */
export class PluginError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "PluginError";
    this.code = code;
    // componentize-js turns a thrown value's `payload` into the `err` case.
    this.payload = { code, message };
  }
}

/**
 * What a plugin may read besides its inputs: the tenant's key-value data and
 * the run's log. The tenant is the one the host made the sandbox for.
 */
export class Context {
  /** The value stored under `key`, or `undefined` when absent. */
  kv(key) {
    return kvGet(key);
  }

  /** The keys that start with `prefix`, sorted, at most `limit` of them. */
  kvKeys(prefix, limit = 100) {
    return kvListKeys(prefix, limit);
  }

  /** Appends a line to the run's log (`trace`, `debug`, `info`, `warn`, `error`). */
  log(level, message) {
    logWrite(level, String(message));
  }
}

/**
 * The base of every plugin. A subclass is constructed once per instance with
 * the tenant's settings (parsed and checked once) and a {@link Context}; each
 * hook method receives the base and returns the tenant's result. The defaults
 * here return the base unchanged, and only the methods a subclass defines are
 * reported to the host, so the others cost nothing per request.
 */
export class Plugin {
  constructor(settings, ctx) {
    this.settings = settings;
    this.ctx = ctx;
  }

  /** Changes the category tree. */
  categories(base) {
    return base;
  }

  /** Changes the size charts. */
  sizeCharts(base) {
    return base;
  }

  /** Decides the commission for one sale line, given the base decision. */
  commission(sale, base) {
    return base;
  }

  /**
   * Customises an email template, given the values it will be rendered with
   * (an object by variable name).
   */
  email(template, context) {
    return template;
  }

  /**
   * Chooses a product's category id (or `undefined` for none), given the base
   * choice. WIT 0.2.0 and later.
   */
  productCategory(product, base) {
    return base;
  }
}

const jsonType = (value) =>
  value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
const described = (type) => (type === "array" || type === "object" ? `an ${type}` : type === "null" ? "null" : `a ${type}`);

/**
 * Parses the tenant's settings text: a JSON object whose keys are those of
 * `defaults`, each of the same JSON type as its default; keys left out take the
 * default. Anything else is a `bad-settings` {@link PluginError} naming the
 * setting by its JSON path (`settings at /cap: expected a number, not a string`).
 */
export function parseSettings(text, defaults = {}) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new PluginError("bad-settings", `settings are not JSON: ${err.message}`);
  }
  if (jsonType(value) !== "object") {
    throw new PluginError("bad-settings", `settings at /: expected an object, not ${described(jsonType(value))}`);
  }
  for (const [key, given] of Object.entries(value)) {
    if (!Object.hasOwn(defaults, key)) {
      const known = Object.keys(defaults).join(", ") || "none";
      throw new PluginError("bad-settings", `settings at /${key}: unknown setting (known: ${known})`);
    }
    const want = jsonType(defaults[key]);
    if (jsonType(given) !== want) {
      throw new PluginError(
        "bad-settings",
        `settings at /${key}: expected ${described(want)}, not ${described(jsonType(given))}`,
      );
    }
  }
  return { ...defaults, ...value };
}

/** The gross amount of a sale line, in minor units (`unitPrice × quantity`). */
export function gross(sale) {
  return sale.unitPrice * BigInt(sale.quantity);
}

/** The value of the sale's attribute named `key`, or `undefined`. */
export function attribute(sale, key) {
  return sale.attributes.find((a) => a.key === key)?.value;
}

/**
 * Recomputes `decision.fee` from its rate for a line of `grossAmount`: the rate
 * applied with rounding half up, kept within `minFee..=maxFee` and never above
 * the gross (the same rule as the Rust SDK's `CommissionDecision::refee`).
 */
export function refee(decision, grossAmount) {
  const raw = (grossAmount * BigInt(decision.rateBps) + 5000n) / 10000n;
  const max = decision.maxFee > decision.minFee ? decision.maxFee : decision.minFee;
  let fee = raw < decision.minFee ? decision.minFee : raw > max ? max : raw;
  if (fee > grossAmount) fee = grossAmount;
  return { ...decision, fee };
}

/**
 * Turns a {@link Plugin} subclass into the component's `hooks` export:
 * `export const hooks = register(MyPlugin, { name, version, defaults })`
 * (`description` and `settingsSchema`, a JSON Schema object, are reported by
 * `describe` from WIT 0.2.0 on).
 * The instance is built on the first hook call from the settings the host
 * gives (constant for the life of a component instance) and kept; a
 * constructor that throws makes that call, and every later one, fail with its
 * error.
 */
export function register(PluginClass, { name, version, description = "", settingsSchema, defaults = {} }) {
  if (!(PluginClass.prototype instanceof Plugin)) {
    throw new TypeError("register() takes a class that extends Plugin");
  }
  const implemented = Object.keys(HOOKS).filter(
    (method) => PluginClass.prototype[method] !== Plugin.prototype[method],
  );
  let built;
  const instance = () => {
    if (built === undefined) {
      try {
        const settings = (PluginClass.parseSettings ?? parseSettings)(settingsText(), defaults);
        built = { plugin: new PluginClass(settings, new Context()) };
      } catch (err) {
        built = { error: err };
      }
    }
    if (built.error !== undefined) throw built.error;
    return built.plugin;
  };
  const call = (method, args) => {
    try {
      return instance()[method](...args);
    } catch (err) {
      if (!(err instanceof PluginError)) {
        // The call ends as a trap; leave the reason in the run's log.
        logWrite("error", `uncaught exception in ${HOOKS[method]}: ${err}${err?.stack ? `\n${err.stack}` : ""}`);
      }
      throw err;
    }
  };
  return {
    // `description` and `settingsSchema` are WIT 0.2.0's; a 0.1.0 build ignores them.
    describe: () => ({
      name,
      version,
      hooks: implemented.map((method) => HOOKS[method]),
      description,
      settingsSchema: settingsSchema === undefined ? undefined : JSON.stringify(settingsSchema),
    }),
    categories: (base) => call("categories", [base]),
    sizeCharts: (base) => call("sizeCharts", [base]),
    commission: (sale, base) => call("commission", [sale, base]),
    email: (template, context) =>
      call("email", [template, Object.fromEntries(context.map((entry) => [entry.key, entry.value]))]),
    productCategory: (product, base) => call("productCategory", [product, base]),
  };
}
