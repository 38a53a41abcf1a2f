// The sign-in page: POST /v1/session, then load the address the clinician asked for.
import { forgetEverything, signIn } from "./api.js";

const form = document.getElementById("sign-in-form");
const error = document.getElementById("sign-in-error");
forgetEverything();

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const username = form.username.value.trim();
  if (!username || !form.password.value) {
    error.textContent = "Enter your username and password.";
    error.hidden = false;
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await signIn(username, form.password.value);
    location.reload();
  } catch (failure) {
    error.textContent = failure.message;
    error.hidden = false;
    form.password.select();
  } finally {
    button.disabled = false;
  }
});
