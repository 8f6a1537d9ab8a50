// PostGraphile 5.x declares `engines: node >= 22`. The only newer-than-Node-20 API its runtime
// packages (grafast, grafserv) use is Promise.withResolvers (ES2024, Node 22); without it every
// query fails with "Cannot read properties of undefined (reading 'items')". This is the
// spec's definition, installed only where the runtime lacks it; on Node >= 22 it does nothing.
if (typeof Promise.withResolvers !== "function") {
  Object.defineProperty(Promise, "withResolvers", {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function withResolvers() {
      let resolve;
      let reject;
      const promise = new this((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}
