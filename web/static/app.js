// medicus web app: the UI around the Go client compiled to WebAssembly
// (medicus.wasm), which exposes the global object `medicus`. All crypto and
// state live in the wasm; this file only renders and forwards input.
"use strict";

const strings = {
  de: {
    language: "Sprache", logout: "Abmelden", login: "Anmelden", user: "Benutzer", password: "Passwort",
    passphrase: "Passphrase für die Schlüssel in diesem Browser", unlock: "Entsperren", rooms: "Räume",
    newRoom: "Neuer Raum", create: "Anlegen", invite: "Einladen", message: "Nachricht", send: "Senden",
    loading: "Lade den Client …", working: "Bitte warten …", loggedIn: "Angemeldet als {0}",
    invited: "{0} eingeladen", sent: "Gesendet", error: "Fehler: {0}", noRooms: "Noch keine Räume",
    you: "Sie",
  },
  en: {
    language: "Language", logout: "Log out", login: "Log in", user: "User", password: "Password",
    passphrase: "Passphrase for the keys in this browser", unlock: "Unlock", rooms: "Rooms",
    newRoom: "New room", create: "Create", invite: "Invite", message: "Message", send: "Send",
    loading: "Loading the client …", working: "Please wait …", loggedIn: "Logged in as {0}",
    invited: "Invited {0}", sent: "Sent", error: "Error: {0}", noRooms: "No rooms yet",
    you: "You",
  },
};

let lang = localStorage.getItem("medicus-lang") || (navigator.language.startsWith("de") ? "de" : "en");
let currentRoom = null;
let syncing = false;

const $ = (id) => document.getElementById(id);

function t(key, ...args) {
  return (strings[lang][key] || key).replace(/\{(\d)\}/g, (_, i) => args[i]);
}

function applyLanguage() {
  document.documentElement.lang = lang;
  $("lang").value = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

function status(text) { $("status").textContent = text; }

function show(view) {
  for (const id of ["login-view", "unlock-view", "app-view"]) $(id).hidden = id !== view;
  $("logout").hidden = view !== "app-view";
}

// busy runs an action with the form disabled, reporting errors in the status line.
async function busy(form, action) {
  const controls = form ? form.querySelectorAll("input, button, textarea") : [];
  controls.forEach((c) => { c.disabled = true; });
  status(t("working"));
  try {
    await action();
  } catch (e) {
    status(t("error", e.message));
  } finally {
    controls.forEach((c) => { c.disabled = false; });
  }
}

async function loggedIn(who) {
  status(t("loggedIn", who.user));
  show("app-view");
  await renderRooms();
  performance.mark("medicus-rooms"); // the room list is rendered
  if (!syncing) syncLoop();
}

async function renderRooms() {
  const rooms = await medicus.rooms();
  const list = $("rooms");
  list.replaceChildren();
  if (rooms.length === 0) {
    const li = document.createElement("li");
    li.textContent = t("noRooms");
    list.append(li);
  }
  for (const r of rooms) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = r.name || r.room_id;
    b.dataset.room = r.room_id;
    b.setAttribute("aria-current", String(r.room_id === currentRoom));
    b.addEventListener("click", () => openRoom(r.room_id, r.name || r.room_id));
    li.append(b);
    list.append(li);
  }
}

async function openRoom(id, name) {
  currentRoom = id;
  $("room-title").textContent = name;
  $("room-view").hidden = false;
  await renderRooms();
  await renderTimeline();
  $("message").focus();
}

async function renderTimeline() {
  if (!currentRoom) return;
  const entries = await medicus.history(currentRoom);
  const list = $("timeline");
  list.replaceChildren();
  for (const e of entries) {
    const li = document.createElement("li");
    li.dataset.seq = e.seq;
    const sender = document.createElement("span");
    sender.className = "sender";
    sender.textContent = e.own ? t("you") : e.sender;
    const time = document.createElement("time");
    time.className = "time";
    time.dateTime = e.time;
    time.textContent = " " + new Date(e.time).toLocaleString(lang);
    const body = document.createElement("div");
    body.className = e.text !== undefined ? "text" : "notice";
    body.textContent = e.text !== undefined ? e.text : e.notice;
    li.append(sender, time, body);
    list.append(li);
  }
  list.scrollTop = list.scrollHeight;
}

// syncLoop runs sync rounds while logged in and re-renders what changed.
async function syncLoop() {
  syncing = true;
  while (syncing) {
    try {
      const news = await medicus.sync();
      if (news.length > 0) {
        await renderRooms();
        if (news.some((m) => m.room === currentRoom)) await renderTimeline();
      }
    } catch (e) {
      if (e.message === "not logged in") break;
      status(t("error", e.message));
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  syncing = false;
}

function wire() {
  $("lang").addEventListener("change", (ev) => {
    lang = ev.target.value;
    localStorage.setItem("medicus-lang", lang);
    applyLanguage();
  });
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(ev.target, async () => {
      const who = await medicus.login(location.origin, $("user").value, $("password").value, $("passphrase").value);
      $("password").value = "";
      $("passphrase").value = "";
      await loggedIn(who);
    });
  });
  $("unlock-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    performance.mark("medicus-unlock");
    busy(ev.target, async () => {
      const who = await medicus.open($("unlock-passphrase").value);
      $("unlock-passphrase").value = "";
      await loggedIn(who);
    });
  });
  $("create-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(ev.target, async () => {
      const name = $("room-name").value;
      const id = await medicus.createRoom(name);
      $("room-name").value = "";
      await openRoom(id, name);
      status("");
    });
  });
  $("invite-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(ev.target, async () => {
      const who = $("invitee").value;
      await medicus.invite(currentRoom, who);
      $("invitee").value = "";
      status(t("invited", who));
    });
  });
  $("send-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(ev.target, async () => {
      await medicus.sendText(currentRoom, $("message").value);
      $("message").value = "";
      await renderTimeline();
      status(t("sent"));
    });
  });
  $("message").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      $("send-form").requestSubmit();
    }
  });
  $("logout").addEventListener("click", () => busy(null, async () => {
    syncing = false;
    await medicus.logout();
    currentRoom = null;
    show("login-view");
    status("");
  }));
}

async function start() {
  applyLanguage();
  wire();
  status(t("loading"));
  const ready = new Promise((resolve) => addEventListener("medicus-ready", resolve, { once: true }));
  const go = new Go();
  const { instance } = await WebAssembly.instantiateStreaming(fetch("/web/medicus.wasm"), go.importObject);
  go.run(instance);
  await ready;
  status("");
  show((await medicus.hasProfile()) ? "unlock-view" : "login-view");
  performance.mark("medicus-ready"); // the wasm client is loaded and a form is shown
}

start().catch((e) => status(t("error", e.message)));
