/*
 * Clarion's service worker: shows Clarion's web push notifications and opens their page on a click.
 *
 * Copy this file to your site's origin (for example https://shop.example/clarion-sw.js): a service
 * worker must come from the origin of the pages it serves. If your site already has a service worker,
 * add `importScripts("/clarion-sw.js");` to it instead.
 *
 * A push carries JSON: {"title", "body", "icon", "url", "message_id", "data"}. Open pages of the site
 * also get it as a message: {type: "clarion-push", message: {...}}.
 */
"use strict";

self.addEventListener("install", function () {
  self.skipWaiting();  // a new version takes over without waiting for every tab to close
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function readPush(event) {
  if (!event.data) return {};
  try {
    return event.data.json();
  } catch (error) {
    return { body: event.data.text() };  // not JSON: show the text as it came
  }
}

self.addEventListener("push", function (event) {
  var message = readPush(event);
  var shown = self.registration.showNotification(message.title || "", {
    body: message.body || "",
    icon: message.icon || undefined,
    tag: message.message_id || undefined,
    data: { url: message.url || null, message_id: message.message_id || null, data: message.data || {} },
  });
  var told = self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
    windows.forEach(function (client) { client.postMessage({ type: "clarion-push", message: message }); });
  });
  event.waitUntil(Promise.all([shown, told]));
});

// A click is reported to Clarion as an open (the signed "clarion_open" URL of the push's data); the page
// is opened through its tracked link, which records the click.
function reportOpen(data) {
  var report = data && data.data && data.data.clarion_open;
  if (!report) return Promise.resolve();
  return fetch(report, { method: "GET", mode: "no-cors", credentials: "omit", cache: "no-store" })
    .catch(function () {});  // offline: the open is lost, the click still opens the page
}

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var data = event.notification.data || {};
  var url = data.url;
  var opened = !url ? Promise.resolve() : self.clients.matchAll({ type: "window", includeUncontrolled: true })
    .then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === url && "focus" in windows[i]) return windows[i].focus();
      }
      return self.clients.openWindow(url);
    });
  event.waitUntil(Promise.all([opened, reportOpen(data)]));
});
