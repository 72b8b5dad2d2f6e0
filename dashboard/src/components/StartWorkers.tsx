// The empty state of a coordinator without workers: the real commands that start some, pointed at this coordinator.

import { useLiveState } from "../hooks";
import { Command, Empty } from "./States";

/** The environment prefix that points the SDK at this coordinator, when it is not on the SDK's default address. */
export function coordinatorEnv(host: string | undefined, grpcPort: number | null | undefined): string {
  if (!host || !grpcPort) return "";
  const local = host === "127.0.0.1" || host === "localhost" || host === "0.0.0.0" || host === "::";
  if (local && grpcPort === 50051) return "";
  const address = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return `DTR_COORDINATOR=${address}:${grpcPort} `;
}

export function StartWorkers() {
  const status = useLiveState((s) => s.status);
  const env = coordinatorEnv(status?.host, status?.grpc_port);
  return (
    <Empty title="No workers yet: start some.">
      <p>Four training processes of one job, on this machine:</p>
      <Command>{`${env}dtrun --nproc 4 examples/real_training_simple.py`}</Command>
      <p>or a single one:</p>
      <Command>{`${env}python examples/real_training_simple.py`}</Command>
      <p className="muted">They appear here as soon as they register.</p>
    </Empty>
  );
}
