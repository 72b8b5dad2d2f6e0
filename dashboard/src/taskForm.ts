// The rules of POST /api/tasks (docs/API.md), checked in the page before sending, so a person sees what is wrong at
// once; the server checks them again and its errors are shown on the field they name.

import type { CreateTaskRequest } from "./api";

export type TaskField = "name" | "world_size" | "dataset" | "epochs" | "config";
export type TaskFormValues = Record<TaskField, string>;
export type TaskFormErrors = Partial<Record<TaskField | "form", string>>;

export const EMPTY_TASK_FORM: TaskFormValues = { name: "", world_size: "", dataset: "", epochs: "", config: "" };

const ID = /^[A-Za-z0-9._-]+$/;
const MAX_CONFIG_BYTES = 64 * 1024;

function identifier(value: string, what: string, max: number): string | null {
  if (value.length > max || !ID.test(value)) return `${what} must be 1-${max} characters of letters, digits, '.', '_' or '-'`;
  if (value === "." || value === "..") return `${what} cannot be '.' or '..'`;
  return null;
}

function integer(value: string, what: string, min: number, max: number): number | string {
  if (!/^\d+$/.test(value)) return `${what} must be a whole number between ${min} and ${max}`;
  const n = Number(value);
  if (n < min || n > max) return `${what} must be between ${min} and ${max} (got ${value})`;
  return n;
}

/** The request the form describes, or the errors of its fields. */
export function validateTaskForm(values: TaskFormValues): { request: CreateTaskRequest | null; errors: TaskFormErrors } {
  const errors: TaskFormErrors = {};
  const request: CreateTaskRequest = { name: values.name.trim() };
  if (!request.name) errors.name = "a task needs a name: the id its workers register with";
  else errors.name = identifier(request.name, "name", 64) ?? undefined;

  const worldSize = values.world_size.trim();
  if (worldSize) {
    const n = integer(worldSize, "world size", 0, 65536);
    if (typeof n === "string") errors.world_size = n;
    else request.world_size = n;
  }
  const dataset = values.dataset.trim();
  if (dataset) {
    const problem = identifier(dataset, "dataset", 128);
    if (problem) errors.dataset = problem;
    else request.dataset = dataset;
  }
  const epochs = values.epochs.trim();
  if (epochs) {
    const n = integer(epochs, "epochs", 1, 1000000);
    if (typeof n === "string") errors.epochs = n;
    else request.epochs = n;
  }
  const config = values.config.trim();
  if (config) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(config);
    } catch (error) {
      errors.config = `config is not valid JSON (${error instanceof Error ? error.message : String(error)})`;
    }
    if (errors.config === undefined) {
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        errors.config = 'config must be a JSON object, e.g. {"lr": 0.1}';
      } else if (new TextEncoder().encode(JSON.stringify(parsed)).length > MAX_CONFIG_BYTES) {
        errors.config = "config must be at most 64 KiB once encoded";
      } else {
        request.config = parsed as Record<string, unknown>;
      }
    }
  }
  for (const key of Object.keys(errors) as (keyof TaskFormErrors)[]) if (errors[key] === undefined) delete errors[key];
  return { request: Object.keys(errors).length === 0 ? request : null, errors };
}

/** The field a server error is about (its message starts with the field's name), else the whole form. */
export function fieldOfServerError(code: string, message: string): TaskField | "form" {
  if (code === "already_exists") return "name";
  const match = /^(name|world_size|dataset|epochs|config)\b/.exec(message);
  return match ? (match[1] as TaskField) : "form";
}
