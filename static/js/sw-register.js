// Registers the service worker (sw.js), which keeps a copy of the app's shell so that the
// app opens without a network and says it is offline. Loaded by every page on its own (some
// pages have no other script in common), after the page's own work: the worker's first
// copy of the shell must not compete with the page for the network.

if ('serviceWorker' in navigator) {
  const register = () => {
    // `updateViaCache: 'none'`: the browser asks the server for sw.js itself at every check,
    // so that a deploy's new worker is found at the next page load.
    navigator.serviceWorker.register('/sw.js', { scope: '/', updateViaCache: 'none' })
      .catch(() => { /* no worker (private mode, a browser that refuses it): the app works online */ });
  };
  if (document.readyState === 'complete') register();
  else window.addEventListener('load', register, { once: true });
}
