// qrgate dashboard login: POST /api/login, then the page (the session is an HttpOnly cookie).
"use strict";

async function login(ev) {
  ev.preventDefault();
  const out = document.getElementById("login-result");
  out.className = "result";
  out.textContent = "Logging in…";
  try {
    const r = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({name: document.getElementById("login-name").value,
                            password: document.getElementById("login-password").value})});
    const data = await r.json();
    out.dataset.answer = data.answer;
    if (data.ok) { window.location.assign("/"); return; }
    out.className = "result bad";
    out.textContent = `Not logged in: ${data.detail || r.statusText}`;
    document.getElementById("login-password").value = "";
  } catch (err) {
    out.className = "result bad";
    out.textContent = `Not sent: ${err.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", login);
});
