// A deliberately misbehaving JavaScript plugin for the host's security tests,
// the JS counterpart of `plugins/hostile`. Every hook misbehaves as its
// settings' `mode` says. Never install it for a tenant.
//
// | mode    | what every hook does |
// |---------|----------------------|
// | `ok`    | returns the base |
// | `spin`  | loops forever |
// | `alloc` | allocates one 1 GiB buffer (and fills it, should that succeed) |
// | `throw` | throws a TypeError (a trap, like a Rust panic) |
// | `error` | throws the plugin error `hostile-error` |

import { Plugin, PluginError, register } from "veneer-sdk";

class Hostile extends Plugin {
  misbehave() {
    switch (this.settings.mode) {
      case "ok":
        return;
      case "spin":
        for (;;) {
          // An empty loop: only fuel or the deadline ends it.
        }
      case "alloc": {
        // One huge buffer: the engine asks for the memory at once.
        const huge = new ArrayBuffer(1 << 30);
        return void new Uint8Array(huge).fill(1);
      }
      case "throw":
        throw new TypeError("hostile plugin threw");
      case "error":
        throw new PluginError("hostile-error", "the hostile plugin refused on purpose");
      default:
        throw new PluginError("bad-settings", `unknown mode \`${this.settings.mode}\``);
    }
  }

  categories(base) {
    this.misbehave();
    return base;
  }

  sizeCharts(base) {
    this.misbehave();
    return base;
  }

  commission(sale, base) {
    this.misbehave();
    return base;
  }

  email(template, context) {
    this.misbehave();
    return template;
  }
}

export const hooks = register(Hostile, {
  name: "js-hostile",
  version: "0.1.0",
  defaults: { mode: "ok" },
});
