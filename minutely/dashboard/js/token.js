// The token the API asks for once it has any (HTTP 401): asked for in a dialog, kept in
// sessionStorage for this browser session only, sent as Bearer, and forgotten on request.
//
// Every request refused while the dialog is open waits on the same answer, so a page that
// sends ten requests at once asks once. The server's reason is shown as text, never as HTML.

const KEY = "minutely.token";
let asking = null;

/** The token kept for this session, or null. */
export function token() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null; // storage refused (a sandboxed frame): ask each time instead
  }
}

/** The headers that carry the kept token, if any. */
export function authHeaders() {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

function keep(value) {
  try {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  } catch {
    /* not kept: the next 401 asks again */
  }
  showForget();
}

/** Forget the kept token; the next API call asks again. */
export function forget() {
  keep(null);
  location.reload();
}

/**
 * The API answered 401 to a request sent with `sent` (a token or null), saying `reason`:
 * resolves once there is a token to try. A request that raced an answer already given
 * (its token was replaced meanwhile) resolves at once and retries with the new one.
 */
export function refused(sent, reason) {
  const now = token();
  if (now && now !== sent) return Promise.resolve();
  if (sent) keep(null); // refused: revoked or mistyped, so not worth keeping
  if (!asking) {
    asking = ask(sent ? `That token was refused: ${reason}` : reason).finally(() => (asking = null));
  }
  return asking;
}

function ask(reason) {
  return new Promise((resolve) => {
    const dialog = document.createElement("dialog");
    dialog.className = "token-dialog";
    dialog.setAttribute("aria-labelledby", "token-title");
    const form = document.createElement("form");
    form.method = "dialog";
    const title = document.createElement("h2");
    title.id = "token-title";
    title.textContent = "This minutely needs a token";
    const why = document.createElement("p");
    why.className = "token-reason";
    why.textContent = reason;
    const help = document.createElement("p");
    help.className = "muted";
    help.textContent =
      "Paste a token with the read scope (minutely token add NAME --scope read). " +
      "It is kept in this browser tab's session only.";
    const input = document.createElement("input");
    input.type = "password";
    input.name = "token";
    input.autocomplete = "off";
    input.required = true;
    input.placeholder = "mt_…";
    input.setAttribute("aria-label", "Token");
    const submit = document.createElement("button");
    submit.type = "submit";
    submit.textContent = "Use token";
    form.append(title, why, help, input, submit);
    dialog.append(form);
    // no way out but a token: every view needs one, and asking again at once would follow
    dialog.addEventListener("cancel", (e) => e.preventDefault());
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      keep(value);
      dialog.close();
      dialog.remove();
      resolve();
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

/** The "Forget token" button in the top bar, shown while a token is kept. */
function showForget() {
  let button = document.getElementById("forget-token");
  if (!button) {
    const bar = document.querySelector(".topbar");
    if (!bar) return;
    button = document.createElement("button");
    button.type = "button";
    button.id = "forget-token";
    button.textContent = "Forget token";
    button.title = "Stop sending the token kept for this session; the next call asks again";
    button.addEventListener("click", forget);
    bar.append(button);
  }
  button.hidden = !token();
}

if (typeof document !== "undefined") {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", showForget);
  else showForget();
}
