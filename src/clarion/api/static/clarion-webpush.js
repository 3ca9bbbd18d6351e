/*
 * Clarion web push snippet: subscribes this browser to Clarion's web push for one contact.
 *
 *   <script src="https://clarion.example.com/webpush/clarion-webpush.js"></script>
 *   <script>
 *     button.onclick = () => Clarion.subscribe({
 *       clarionUrl: "https://clarion.example.com",   // where Clarion's API answers
 *       token: contactToken,                         // from your backend: POST /api/contacts/{id}/client-token
 *       serviceWorker: "/clarion-sw.js",             // a copy of clarion-sw.js on YOUR site's origin
 *     }).then(subscription => ..., error => ...);
 *   </script>
 *
 * Call it from a click: browsers only show the permission prompt for a user gesture. No dependencies.
 */
(function (global) {
  "use strict";

  function base64UrlToBytes(text) {
    var padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = global.atob(padded);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function sameBytes(buffer, bytes) {
    if (!buffer) return false;
    var view = new Uint8Array(buffer);
    return view.length === bytes.length && view.every(function (b, i) { return b === bytes[i]; });
  }

  function api(options, path) {
    if (!options || !options.clarionUrl) throw new Error("Clarion: clarionUrl is required");
    return options.clarionUrl.replace(/\/+$/, "") + "/webpush" + path;
  }

  async function check(response, what) {
    if (response.ok) return response;
    throw new Error("Clarion: " + what + " answered " + response.status + ": " + (await response.text()));
  }

  function sendSubscription(options, method, body) {
    return fetch(api(options, "/subscriptions"), {
      method: method,
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + options.token },
      body: JSON.stringify(body),
    }).then(function (response) { return check(response, method + " /webpush/subscriptions"); });
  }

  function workerUrl(options) {
    return options.serviceWorker || "/clarion-sw.js";
  }

  async function subscribe(options) {
    if (!options || !options.token) throw new Error("Clarion: token (a contact token of scope webpush) is required");
    if (!("serviceWorker" in navigator) || !("PushManager" in global)) {
      throw new Error("Clarion: this browser has no Push API (or the page is not a secure context)");
    }
    // Ask first, while the click's user activation is fresh.
    var permission = await Notification.requestPermission();
    if (permission !== "granted") throw new Error("Clarion: notifications are " + permission);
    await navigator.serviceWorker.register(workerUrl(options), options.scope ? { scope: options.scope } : undefined);
    var registration = await navigator.serviceWorker.ready;
    var answer = await check(await fetch(api(options, "/vapid-public-key")), "GET /webpush/vapid-public-key");
    var key = base64UrlToBytes((await answer.json()).publicKey);
    var subscription = await registration.pushManager.getSubscription();
    if (subscription && !sameBytes(subscription.options.applicationServerKey, key)) {
      await subscription.unsubscribe();  // made for another server key: the push service would refuse us
      subscription = null;
    }
    if (!subscription) {
      subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    }
    await sendSubscription(options, "POST", subscription.toJSON());
    return subscription;
  }

  async function unsubscribe(options) {
    if (!("serviceWorker" in navigator)) return false;
    var registration = await navigator.serviceWorker.getRegistration(options.scope || workerUrl(options));
    var subscription = registration && (await registration.pushManager.getSubscription());
    if (!subscription) return false;
    await sendSubscription(options, "DELETE", { endpoint: subscription.endpoint });
    return subscription.unsubscribe();
  }

  global.Clarion = Object.assign(global.Clarion || {}, { subscribe: subscribe, unsubscribe: unsubscribe });
})(self);
