// Remember the operator's name between reviews (the only script on the page; it works without it).
document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("reviewer");
  if (!input) return;
  const key = "defectflow.reviewer";
  if (!input.value) input.value = localStorage.getItem(key) || "";
  input.form.addEventListener("submit", () => localStorage.setItem(key, input.value.trim()));
});
