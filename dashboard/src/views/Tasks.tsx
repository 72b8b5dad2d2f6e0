// Tasks: the list with a stop button (after a confirmation), and a form that creates one; the form checks the API's
// rules before sending and shows the server's errors on the field they name.

import { useEffect, useRef, useState } from "react";
import type { FormEvent } from "react";
import { ApiError } from "../api";
import type { Task } from "../api";
import { Badge } from "../components/Badge";
import { DataTable, sortFromParams } from "../components/DataTable";
import type { Column } from "../components/DataTable";
import { Empty } from "../components/States";
import { formatInt, formatTime, plural } from "../format";
import { useLiveState, useStore } from "../hooks";
import { href, useRoute, useSetParams } from "../router";
import { EMPTY_TASK_FORM, fieldOfServerError, validateTaskForm } from "../taskForm";
import type { TaskField, TaskFormErrors, TaskFormValues } from "../taskForm";

const STOPPABLE = new Set(["pending", "running"]);

export function Tasks() {
  const tasks = useLiveState((s) => s.tasks);
  const { params } = useRoute();
  const setParams = useSetParams();
  const [stopping, setStopping] = useState<Task | null>(null);

  const columns: Column<Task>[] = [
    {
      key: "task",
      label: "Task",
      value: (t) => t.task_id,
      render: (t) => (
        <a href={href("training", { task: t.task_id })}>
          <code>{t.task_id}</code>
        </a>
      ),
    },
    {
      key: "status",
      label: "Status",
      value: (t) => t.status,
      render: (t) => (
        <>
          <Badge status={t.status} />
          {t.reason && <span className="muted task-reason">{t.reason}</span>}
        </>
      ),
    },
    {
      key: "workers",
      label: "Workers",
      numeric: true,
      value: (t) => t.workers,
      render: (t) => `${formatInt(t.workers)}${t.world_size ? ` / ${formatInt(t.world_size)}` : ""}`,
    },
    { key: "dataset", label: "Dataset", value: (t) => t.dataset, render: (t) => t.dataset ?? "—" },
    { key: "epochs", label: "Epochs", numeric: true, value: (t) => t.epochs, render: (t) => formatInt(t.epochs) },
    {
      key: "created",
      label: "Created",
      numeric: true,
      className: "narrow-hide",
      value: (t) => t.created_at,
      render: (t) => `${formatTime(t.created_at)} (${t.created_by})`,
    },
    {
      key: "actions",
      label: "Actions",
      render: (t) =>
        STOPPABLE.has(t.status) ? (
          <button type="button" className="button-danger" onClick={() => setStopping(t)} aria-label={`Stop task ${t.task_id}`}>
            Stop
          </button>
        ) : (
          <span className="muted">{t.status === "stopping" ? "stopping…" : "ended"}</span>
        ),
    },
  ];

  return (
    <div className="tasks-layout">
      <section className="card" aria-labelledby="task-list">
        <h2 id="task-list">All tasks</h2>
        {tasks.length === 0 ? (
          <Empty title="No task yet.">
            <p>Create one with the form, or start workers: the first worker that names a task creates it.</p>
          </Empty>
        ) : (
          <>
            <p className="muted">{plural(tasks.length, "task")}, oldest first</p>
            <DataTable
              caption="Tasks"
              columns={columns}
              rows={tasks}
              rowKey={(t) => t.task_id}
              sort={params.get("sort") ? sortFromParams(params, { key: "created", dir: "asc" }) : null}
              onSort={(s) => setParams({ sort: s.key, dir: s.dir })}
              rowAttributes={(t) => ({ "data-task-id": t.task_id, "data-status": t.status })}
            />
          </>
        )}
      </section>
      <CreateTaskForm />
      {stopping && <StopDialog task={stopping} onClose={() => setStopping(null)} />}
    </div>
  );
}

const FIELDS: { field: TaskField; label: string; hint: string; type?: string; inputMode?: "numeric" }[] = [
  { field: "name", label: "Name", hint: "the id workers register with: letters, digits, . _ -" },
  { field: "world_size", label: "World size", hint: "members the job is meant to have (optional)", inputMode: "numeric" },
  { field: "dataset", label: "Dataset", hint: "the dataset it trains on (optional)" },
  { field: "epochs", label: "Epochs", hint: "1 to 1,000,000 (optional)", inputMode: "numeric" },
];

function CreateTaskForm() {
  const store = useStore();
  const datasets = useLiveState((s) => s.datasets);
  const [values, setValues] = useState<TaskFormValues>(EMPTY_TASK_FORM);
  const [errors, setErrors] = useState<TaskFormErrors>({});
  const [submitted, setSubmitted] = useState(false);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<string | null>(null);
  const form = useRef<HTMLFormElement>(null);

  const change = (field: TaskField, value: string) => {
    const next = { ...values, [field]: value };
    setValues(next);
    setCreated(null);
    if (submitted) setErrors(validateTaskForm(next).errors);
  };

  const focusFirstError = (found: TaskFormErrors) => {
    const first = (["name", "world_size", "dataset", "epochs", "config"] as const).find((f) => found[f]);
    if (first) form.current?.querySelector<HTMLElement>(`#task-${first}`)?.focus();
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setSubmitted(true);
    const { request, errors: found } = validateTaskForm(values);
    setErrors(found);
    if (!request) {
      focusFirstError(found);
      return;
    }
    setBusy(true);
    try {
      const task = await store.api.createTask(request);
      store.noteTask(task);
      setCreated(task.task_id);
      setValues(EMPTY_TASK_FORM);
      setSubmitted(false);
      setErrors({});
    } catch (error) {
      const apiError = error instanceof ApiError ? error : new ApiError(0, "error", String(error));
      const field = fieldOfServerError(apiError.code, apiError.message);
      const next = { [field]: apiError.message } as TaskFormErrors;
      setErrors(next);
      focusFirstError(next);
    } finally {
      setBusy(false);
    }
  };

  const described = (field: TaskField) => [`task-${field}-hint`, errors[field] ? `task-${field}-error` : ""].join(" ").trim();

  return (
    <section className="card" aria-labelledby="create-task">
      <h2 id="create-task">Create a task</h2>
      <form ref={form} onSubmit={submit} noValidate className="task-form">
        {FIELDS.map(({ field, label, hint, inputMode }) => (
          <div className="field" key={field}>
            <label htmlFor={`task-${field}`}>
              {label}
              {field === "name" && <span aria-hidden="true"> *</span>}
            </label>
            <input
              id={`task-${field}`}
              name={field}
              type="text"
              inputMode={inputMode}
              required={field === "name"}
              autoComplete="off"
              spellCheck={false}
              list={field === "dataset" ? "known-datasets" : undefined}
              value={values[field]}
              onChange={(e) => change(field, e.target.value)}
              aria-invalid={errors[field] ? true : undefined}
              aria-describedby={described(field)}
            />
            <p id={`task-${field}-hint`} className="field-hint">
              {hint}
            </p>
            {errors[field] && (
              <p id={`task-${field}-error`} className="field-error">
                {errors[field]}
              </p>
            )}
          </div>
        ))}
        <datalist id="known-datasets">
          {datasets.map((d) => (
            <option key={d.name} value={d.name} />
          ))}
        </datalist>
        <div className="field field-wide">
          <label htmlFor="task-config">Config (JSON object)</label>
          <textarea
            id="task-config"
            name="config"
            rows={4}
            spellCheck={false}
            placeholder='{"lr": 0.1, "batch_size": 64}'
            value={values.config}
            onChange={(e) => change("config", e.target.value)}
            aria-invalid={errors.config ? true : undefined}
            aria-describedby={described("config")}
          />
          <p id="task-config-hint" className="field-hint">
            optional; kept as sent, at most 64 KiB
          </p>
          {errors.config && (
            <p id="task-config-error" className="field-error">
              {errors.config}
            </p>
          )}
        </div>
        {errors.form && (
          <p className="field-error form-error" role="alert">
            {errors.form}
          </p>
        )}
        <div className="form-actions">
          <button type="submit" className="button-primary" disabled={busy}>
            {busy ? "Creating…" : "Create task"}
          </button>
          <p className="form-status" role="status">
            {created && (
              <>
                Task <code>{created}</code> created: workers join it with <code>task_id="{created}"</code>.
              </>
            )}
          </p>
        </div>
      </form>
    </section>
  );
}

function StopDialog({ task, onClose }: { task: Task; onClose: () => void }) {
  const store = useStore();
  const dialog = useRef<HTMLDialogElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const element = dialog.current;
    if (element && !element.open) element.showModal();
    return () => element?.close();
  }, []);

  const confirm = async () => {
    setBusy(true);
    try {
      store.noteTask(await store.api.stopTask(task.task_id));
      onClose();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
      setBusy(false);
    }
  };

  return (
    <dialog ref={dialog} className="dialog" aria-labelledby="stop-title" aria-describedby="stop-body" onCancel={onClose}>
      <h2 id="stop-title">Stop task {task.task_id}?</h2>
      <p id="stop-body">
        {task.workers > 0
          ? `Its ${plural(task.workers, "worker")} get a stop command at once: each finishes the batch in hand and exits.`
          : "It has no worker: it stops at once."}
      </p>
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      <div className="form-actions">
        <button type="button" className="button-danger" onClick={confirm} disabled={busy}>
          {busy ? "Stopping…" : "Stop task"}
        </button>
        <button type="button" onClick={onClose} autoFocus>
          Cancel
        </button>
      </div>
    </dialog>
  );
}
