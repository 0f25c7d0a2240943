// A luxury consignment store, in TypeScript: the same logic as the Rust example
// `plugins/luxury-consignment` (extra categories for authenticated pre-owned
// goods; a tiered commission, higher on cheap items, capped per line), kept
// equal to it by the host's test `js_plugins` over shared fixture cases.

import { Plugin, PluginError, attribute, gross, refee, register } from "veneer-sdk";
import type { Category, CommissionDecision, Sale } from "veneer-sdk";

/** One commission tier: lines whose gross is at least `from` pay `rate_bps`. */
interface Tier {
  from: number;
  rate_bps: number;
}

/** The tenant's settings (the same JSON as the Rust plugin's). */
interface Settings {
  tiers: Tier[];
  cap: number;
  unauthenticated_surcharge_bps: number;
}

const U32_MAX = 0xffff_ffff;

const defaults: Settings = {
  tiers: [
    { from: 0, rate_bps: 2_500 },
    { from: 100_000, rate_bps: 1_800 },
    { from: 500_000, rate_bps: 1_200 },
  ],
  cap: 150_000,
  unauthenticated_surcharge_bps: 300,
};

function category(id: string, parent: string, name: string, position: number): Category {
  return {
    id,
    parent,
    name,
    slug: id.slice(id.lastIndexOf("-") + 1),
    position,
    attributes: [{ key: "authentication", value: "required" }],
  };
}

class LuxuryConsignment extends Plugin<Settings> {
  // Checked and converted once per instance: money is u64 (bigint) in the WIT.
  private readonly tiers: { from: bigint; rateBps: number }[];
  private readonly cap: bigint;
  private readonly surcharge: number;

  constructor(settings: Settings, ctx: ConstructorParameters<typeof Plugin>[1]) {
    super(settings, ctx);
    // The Rust twin's serde types refuse what these refuse: negatives,
    // fractions, rates past u32, tier fields missing or unknown.
    const whole = (value: unknown, what: string, max: number) => {
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0 || value > max) {
        throw new PluginError("bad-settings", `${what} must be a whole number from 0 to ${max}, not ${JSON.stringify(value)}`);
      }
      return value;
    };
    this.tiers = settings.tiers.map((tier, i) => {
      const unknown = Object.keys(tier ?? {}).filter((key) => key !== "from" && key !== "rate_bps");
      if (typeof tier !== "object" || tier === null || unknown.length > 0) {
        throw new PluginError("bad-settings", `tiers[${i}] must be {"from": …, "rate_bps": …}`);
      }
      return {
        from: BigInt(whole(tier.from, `tiers[${i}].from`, Number.MAX_SAFE_INTEGER)),
        rateBps: whole(tier.rate_bps, `tiers[${i}].rate_bps`, U32_MAX),
      };
    });
    this.cap = BigInt(whole(settings.cap, "cap", Number.MAX_SAFE_INTEGER));
    this.surcharge = whole(settings.unauthenticated_surcharge_bps, "unauthenticated_surcharge_bps", U32_MAX);
  }

  override categories(base: Category[]): Category[] {
    const has = (id: string) => base.some((c) => c.id === id);
    const extra: Category[] = [];
    if (has("bags")) extra.push(category("bags-vintage", "bags", "Vintage Bags", 90));
    if (has("watches")) extra.push(category("watches-pre-owned", "watches", "Pre-owned Watches", 90));
    if (has("accessories")) {
      extra.push(category("accessories-fine-jewelry", "accessories", "Fine Jewelry", 90));
    }
    return [...base.filter((c) => !extra.some((e) => e.id === c.id)), ...extra];
  }

  override commission(sale: Sale, base: CommissionDecision): CommissionDecision {
    const amount = gross(sale);
    let tier: { from: bigint; rateBps: number } | undefined;
    for (const t of this.tiers) {
      if (t.from <= amount && (tier === undefined || t.from >= tier.from)) tier = t;
    }
    if (tier === undefined) {
      throw new PluginError("bad-settings", 'no tier starts at 0; add one with "from": 0');
    }
    let rate = tier.rateBps;
    if (attribute(sale, "authenticated") !== "true") {
      rate = Math.min(rate + this.surcharge, U32_MAX); // u32 saturating_add
    }
    const rateBps = Math.min(rate, 10_000);
    const decided = refee(
      {
        ...base,
        ruleId: `luxury-tier-${tier.from}`,
        rateBps,
        maxFee: this.cap > base.minFee ? this.cap : base.minFee,
      },
      amount,
    );
    return { ...decided, note: `consignment tier from ${tier.from} at ${rateBps} bp, capped at ${this.cap}` };
  }
}

export const hooks = register(LuxuryConsignment, {
  name: "js-luxury-consignment",
  version: "0.1.0",
  defaults,
});
