// The pricing page: fills the form from GET vocabulary, sends it to POST predict, shows the
// answer. Every text from the server or the user goes into the page as text (textContent,
// option values), never as HTML. The server is the only validator: what is not a decimal
// number is sent as typed and an empty field not at all, so its 422 message names the field
// and is shown beside it, in Russian where its kind is known, the server's own text beside it.
"use strict";

const OWNERS = { "1": "1", "2": "2", "3+": "3 и более", unknown: "неизвестно" };
const RATINGS = {
  below_market: "Ниже рынка: цена продавца ниже рыночного диапазона",
  fair: "В рынке: цена продавца внутри рыночного диапазона",
  above_market: "Выше рынка: цена продавца выше рыночного диапазона",
};
const rub = new Intl.NumberFormat("ru-RU", { maximumFractionDigits: 0 });
// Years stay 1900, not 1 900: grouped from five digits on, as Russian writes numbers.
const decimal = new Intl.NumberFormat("ru-RU", { maximumFractionDigits: 2, useGrouping: "min2" });
// The schema's brand and model names are upper-case (its pattern): typed ones are made so.
const UPPER_CASE = new Set(["brand", "model_name"]);
// A number as a person types it: digits, spaces between groups, a comma or point; not 0x10, 1e5.
const DECIMAL = /^[+-]?\d+(?:[.,]\d+)?$/;
const TYPES = { int: "целое число", float: "число", str: "текст" };
const BOUNDS = { ">=": "не меньше", ">": "больше", "<=": "не больше", "<": "меньше" };
// msgspec's message kinds (those a form can meet), each to a sentence in Russian.
const MESSAGES = [
  [/^Object missing required field `/, () => "Обязательное поле: заполните его."],
  [/^Expected `(\w+)`, got `\w+`/, (m) => `Нужно ${TYPES[m[1]] || m[1]}.`],
  [
    /^Expected `(?:int|float)` (>=|>|<=|<) (\S+)$/,
    (m) => `Значение должно быть ${BOUNDS[m[1]]} ${decimal.format(Number(m[2]))}.`,
  ],
  [/^Expected `str` of length (>=|<=) (\d+)$/, (m) => `Число символов: ${BOUNDS[m[1]]} ${m[2]}.`],
  [/^Expected `str` matching regex/, () => "Недопустимые символы: латинские буквы, цифры, «_» и «-»."],
  [/^Invalid enum value/, () => "Такого значения нет в списке."],
];

let vocabulary = null;

function byId(id) {
  return document.getElementById(id);
}

function fillOptions(element, values, labels) {
  element.replaceChildren(
    ...values.map((value) => {
      const option = document.createElement("option");
      option.value = value;
      if (element.tagName === "SELECT") option.textContent = (labels && labels[value]) || value;
      return option;
    }),
  );
}

function knownModels(brand) {
  if (vocabulary.brand_models === null) return vocabulary.choices.model_name;
  return vocabulary.brand_models[brand] || null;
}

// The dependent list: the model names of the brand typed or chosen; an unknown brand is said.
function followBrand() {
  const brand = byId("brand").value.trim().toUpperCase();
  const hint = byId("model-hint");
  if (brand === "") {
    fillOptions(byId("model-list"), []);
    hint.textContent = "Сначала выберите марку.";
    return;
  }
  const models = knownModels(brand);
  if (models === null) {
    fillOptions(byId("model-list"), []);
    hint.textContent = `Марка «${brand}» модели неизвестна: цена будет оценена как для редкой марки.`;
    hint.classList.add("warning");
    return;
  }
  hint.classList.remove("warning");
  fillOptions(byId("model-list"), models);
  hint.textContent = `Моделей этой марки в справочнике: ${models.length}.`;
}

async function loadVocabulary() {
  const status = byId("model-status");
  try {
    const response = await fetch("vocabulary", { headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    vocabulary = body;
  } catch (error) {
    status.textContent = `Модель пока не готова (${error.message}); повторим через 5 с.`;
    setTimeout(loadVocabulary, 5000);
    return;
  }
  fillOptions(byId("brand-list"), vocabulary.choices.brand);
  fillOptions(byId("color-list"), vocabulary.choices.color);
  for (const name of vocabulary.closed) {
    fillOptions(byId(name), vocabulary.choices[name], name === "n_owners" ? OWNERS : null);
  }
  followBrand();
  status.textContent = `Модель ${vocabulary.model_version} готова.`;
  document.body.dataset.ready = "true";
  performance.mark("form-ready"); // read by scripts/pricing_page.py
}

// A number as typed ("1 250 000", "2,5") when it is a decimal one, else the text for the server.
function fieldValue(element) {
  const text = element.value.trim();
  if (UPPER_CASE.has(element.name)) return text.toUpperCase();
  if (!element.dataset.kind) return text;
  const compact = text.replace(/[\s\u00a0]/g, "");
  return DECIMAL.test(compact) ? Number(compact.replace(",", ".")) : text;
}

// An empty field is left out: the server names a missing required one.
function carFromForm(form) {
  const car = {};
  for (const element of form.elements) {
    if (!element.name || element.value.trim() === "") continue;
    car[element.name] = fieldValue(element);
  }
  return car;
}

function clearErrors(form) {
  for (const element of form.elements) {
    if (!element.name) continue;
    element.removeAttribute("aria-invalid");
    byId(`${element.name}-error`).textContent = "";
  }
  byId("form-error").textContent = "";
}

// The field a 422 names: its JSON path ($.mileage), or a missing field in the message.
function erroredField(location) {
  const path = /^\$\.([a-z_]+)$/.exec(location.path);
  if (path) return path[1];
  const missing = /field `([a-z_]+)`/.exec(location.message);
  return missing ? missing[1] : null;
}

// The server's message in Russian where its kind is known, the server's own text beside it.
function showMessage(element, message) {
  const known = MESSAGES.find(([pattern]) => pattern.test(message));
  const server = document.createElement("span");
  server.lang = "en";
  server.className = "server-message";
  server.textContent = message;
  if (known) element.replaceChildren(`${known[1](known[0].exec(message))} `, server);
  else element.replaceChildren(server);
}

function showErrors(form, body) {
  let first = null;
  for (const location of body.extra || []) {
    const name = erroredField(location);
    const element = name && form.elements.namedItem(name);
    if (!element) continue;
    element.setAttribute("aria-invalid", "true");
    showMessage(byId(`${name}-error`), location.message);
    first = first || element;
  }
  if (first) {
    byId("form-error").textContent = "Проверьте поля, отмеченные ошибкой.";
    first.focus();
  } else {
    byId("form-error").textContent = body.detail || "Не удалось оценить автомобиль.";
  }
}

function place(element, value, low, high) {
  element.style.left = `${(100 * (value - low)) / (high - low)}%`;
}

function showPrice(answer, asking) {
  byId("result").hidden = false;
  byId("price").textContent = `${rub.format(answer.price_rub)} ₽`;
  byId("model-version").textContent = `Модель ${answer.model_version}.`;
  const interval = byId("interval");
  const hasInterval = answer.price_lower_rub !== undefined;
  interval.hidden = !hasInterval;
  if (hasInterval) {
    const lower = answer.price_lower_rub;
    const upper = answer.price_upper_rub;
    byId("interval-text").textContent =
      `Рыночный диапазон (80 % похожих объявлений): от ${rub.format(lower)} до ${rub.format(upper)} ₽.`;
    const points = asking === undefined ? [lower, upper] : [lower, upper, asking];
    const spread = Math.max(...points) - Math.min(...points);
    // An interval of one price (and no asking price elsewhere): a bar around it, not 0 / 0.
    const span = spread > 0 ? spread : Math.max(Math.abs(lower), 1);
    const low = Math.min(...points) - 0.1 * span;
    const high = Math.max(...points) + 0.1 * span;
    const range = byId("bar-range");
    place(range, lower, low, high);
    range.style.width = `${(100 * (upper - lower)) / (high - low)}%`;
    place(byId("bar-price"), answer.price_rub, low, high);
    const mark = byId("bar-asking");
    mark.hidden = asking === undefined;
    if (asking !== undefined) place(mark, asking, low, high);
  }
  const rating = byId("rating");
  rating.hidden = answer.rating === undefined && answer.rating_unavailable === undefined;
  rating.className = `rating ${answer.rating || ""}`;
  if (answer.rating !== undefined) rating.textContent = RATINGS[answer.rating];
  else if (answer.rating_unavailable !== undefined)
    rating.textContent = "Цену продавца оценить нельзя: у модели нет рыночного диапазона.";
  byId("result-title").focus();
}

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  const car = carFromForm(form);
  const button = byId("price-button");
  button.disabled = true;
  performance.mark("price-requested");
  try {
    const response = await fetch("predict", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(car),
    });
    const body = await response.json();
    if (response.ok) {
      showPrice(body, car.asking_price_rub);
      performance.mark("price-shown");
    } else showErrors(form, body);
  } catch (error) {
    byId("form-error").textContent = `Сервер недоступен: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  byId("brand").addEventListener("input", followBrand);
  byId("car-form").addEventListener("submit", submit);
  loadVocabulary();
});
