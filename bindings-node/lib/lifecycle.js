'use strict';
// Process lifecycle: live clients flush on `beforeExit`, for at most the core's exit-flush
// grace each.

/** The method a client flushes itself with at `beforeExit`. */
const kExitFlush = Symbol('meterline.exitFlush');

/** Clients not shut down yet. Weak: forgetting a client must not keep it alive. */
const liveClients = new Set();
const forgotten = new FinalizationRegistry((ref) => liveClients.delete(ref));
let exitHookInstalled = false;

function watchForExit(client, ref) {
  liveClients.add(ref);
  forgotten.register(client, ref, ref);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('beforeExit', flushLiveClients);
  }
}

// `beforeExit` fires again after the flush's own async work, so each client flushes only
// when something was tracked since its last exit flush: the process still exits.
function flushLiveClients() {
  const pending = [];
  for (const ref of liveClients) {
    const client = ref.deref();
    if (client === undefined) liveClients.delete(ref);
    else pending.push(client[kExitFlush]());
  }
  return Promise.all(pending);
}

/** A client that was shut down no longer flushes at exit. */
function forgetAtExit(ref) {
  liveClients.delete(ref);
  forgotten.unregister(ref);
}

module.exports = { forgetAtExit, kExitFlush, watchForExit };
