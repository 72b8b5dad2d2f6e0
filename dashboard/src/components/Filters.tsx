// Labelled filter controls whose values live in the URL.

import type { ReactNode } from "react";

export function FilterBar({ children, label }: { children: ReactNode; label: string }) {
  return (
    <div className="filters" role="group" aria-label={label}>
      {children}
    </div>
  );
}

export function SelectFilter(props: {
  id: string;
  label: string;
  value: string;
  options: readonly (string | { value: string; label: string })[];
  allLabel?: string;
  onChange: (value: string) => void;
}) {
  const { id, label, value, options, allLabel, onChange } = props;
  return (
    <div className="field field-inline">
      <label htmlFor={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
        {allLabel !== undefined && <option value="">{allLabel}</option>}
        {options.map((option) => {
          const { value: v, label: l } = typeof option === "string" ? { value: option, label: option } : option;
          return (
            <option key={v} value={v}>
              {l}
            </option>
          );
        })}
      </select>
    </div>
  );
}
