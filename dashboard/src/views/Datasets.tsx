// Datasets: per dataset, task and retained epoch, progress bars of shards done / in progress / unstarted, and the
// samples committed.

import type { Dataset, DatasetEpoch } from "../api";
import { FilterBar, SelectFilter } from "../components/Filters";
import { ProgressBar } from "../components/ProgressBar";
import { Command, Empty } from "../components/States";
import { formatInt, formatPercent, formatTime } from "../format";
import { useLiveState } from "../hooks";
import { href, useRoute, useSetParams } from "../router";

export function Datasets() {
  const datasets = useLiveState((s) => s.datasets);
  const { params } = useRoute();
  const setParams = useSetParams();
  if (datasets.length === 0) {
    return (
      <Empty title="No dataset registered yet.">
        <p>Register one from Python; its epochs' progress shows here once workers read it:</p>
        <Command>{`from dtruntime import DatasetRegistry\nDatasetRegistry().register("digits", total_samples=1797, shard_size=64, shuffle=True)`}</Command>
      </Empty>
    );
  }
  const task = params.get("task") ?? "";
  const taskIds = [...new Set(datasets.flatMap((d) => d.tasks.map((t) => t.task_id)))].sort();
  return (
    <>
      {taskIds.length > 1 && (
        <FilterBar label="Filter datasets">
          <SelectFilter id="datasets-task" label="Task" value={task} options={taskIds} allLabel="all tasks" onChange={(v) => setParams({ task: v })} />
        </FilterBar>
      )}
      <div className="stack">
        {datasets.map((dataset) => (
          <DatasetCard key={dataset.name} dataset={dataset} task={task} />
        ))}
      </div>
    </>
  );
}

function DatasetCard({ dataset, task }: { dataset: Dataset; task: string }) {
  const tasks = dataset.tasks.filter((t) => !task || t.task_id === task);
  return (
    <section className="card" aria-labelledby={`dataset-${dataset.name}`} data-dataset={dataset.name}>
      <h2 id={`dataset-${dataset.name}`}>{dataset.name}</h2>
      <p className="muted">
        {formatInt(dataset.total_samples)} samples in {formatInt(dataset.num_shards)} shards of {formatInt(dataset.shard_size)} ·{" "}
        {dataset.shuffle ? `shuffled (seed ${dataset.seed})` : "in order"} · registered {formatTime(dataset.registered_at)}
      </p>
      {tasks.length === 0 ? (
        <p className="muted">No task has read it yet.</p>
      ) : (
        tasks.map((t) => (
          <div key={t.task_id} className="dataset-task">
            <h3>
              task <a href={href("training", { task: t.task_id })}>{t.task_id}</a>{" "}
              <span className="muted num">· current epoch {formatInt(t.current_epoch)}</span>
            </h3>
            <ul className="epochs">
              {t.epochs
                .slice()
                .sort((a, b) => b.epoch - a.epoch)
                .map((epoch) => (
                  <EpochRow key={epoch.epoch} dataset={dataset} epoch={epoch} task={t.task_id} />
                ))}
            </ul>
          </div>
        ))
      )}
    </section>
  );
}

function EpochRow({ dataset, epoch, task }: { dataset: Dataset; epoch: DatasetEpoch; task: string }) {
  const inProgress = epoch.in_progress_shards ?? null;
  const unstarted = inProgress === null ? null : Math.max(0, epoch.total_shards - epoch.done_shards - inProgress);
  const totalSamples = epoch.total_samples ?? dataset.total_samples;
  const owners = Object.entries(epoch.shards_per_worker).filter(([, n]) => n > 0);
  return (
    <li className="epoch" data-epoch={epoch.epoch}>
      <div className="epoch-head">
        <span className="epoch-name">epoch {formatInt(epoch.epoch)}</span>
        <span className="num">
          {formatInt(epoch.done_shards)} / {formatInt(epoch.total_shards)} shards done ({formatPercent(epoch.done_shards, epoch.total_shards)})
        </span>
      </div>
      <ProgressBar
        label={`${dataset.name}, task ${task}, epoch ${epoch.epoch}: shards`}
        total={epoch.total_shards}
        done={epoch.done_shards}
        inProgress={inProgress}
      />
      <p className="epoch-legend num">
        <span className="legend-done">{formatInt(epoch.done_shards)} done</span>
        {inProgress !== null && <span className="legend-active">{formatInt(inProgress)} in progress</span>}
        {unstarted !== null && <span className="legend-rest">{formatInt(unstarted)} unstarted</span>}
        {epoch.committed_samples !== undefined && (
          <span>
            {formatInt(epoch.committed_samples)} / {formatInt(totalSamples)} samples committed
          </span>
        )}
        {epoch.unowned_shards > 0 && <span className="legend-warn">{formatInt(epoch.unowned_shards)} unowned</span>}
      </p>
      {owners.length > 0 && (
        <p className="muted epoch-owners num">
          unfinished per worker: {owners.map(([worker, n]) => `${worker} ${formatInt(n)}`).join(" · ")}
        </p>
      )}
    </li>
  );
}
