// A table whose column headers sort it (click or Enter/Space on the header's button; aria-sort says the order). The
// sort order lives in the URL (see router.ts), so a sorted view can be shared.

import type { ReactNode } from "react";

export interface Column<T> {
  key: string;
  label: string;
  /** The value the column sorts by; a column without one does not sort. */
  value?: (row: T) => string | number | boolean | null | undefined;
  render: (row: T) => ReactNode;
  numeric?: boolean;
  /** Extra class names for the cells, e.g. `narrow-hide` for columns dropped on small screens. */
  className?: string;
}

export interface Sort {
  key: string;
  dir: "asc" | "desc";
}

function compare(a: unknown, b: unknown): number {
  const aMissing = a === null || a === undefined;
  const bMissing = b === null || b === undefined;
  if (aMissing || bMissing) return aMissing === bMissing ? 0 : aMissing ? 1 : -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "boolean" && typeof b === "boolean") return Number(a) - Number(b);
  return String(a).localeCompare(String(b), "en", { numeric: true });
}

/** `rows` sorted by a column (stable; missing values last in both directions). */
export function sortRows<T>(rows: readonly T[], columns: readonly Column<T>[], sort: Sort | null): T[] {
  const column = sort && columns.find((c) => c.key === sort.key && c.value);
  if (!sort || !column || !column.value) return rows.slice();
  const value = column.value;
  const sign = sort.dir === "asc" ? 1 : -1;
  return rows
    .map((row, index) => ({ row, index, key: value(row) }))
    .sort((x, y) => {
      const missing = (x.key === null || x.key === undefined) !== (y.key === null || y.key === undefined);
      const order = missing ? compare(x.key, y.key) : sign * compare(x.key, y.key);
      return order || x.index - y.index;
    })
    .map((entry) => entry.row);
}

export function DataTable<T>(props: {
  caption: string;
  columns: readonly Column<T>[];
  rows: readonly T[];
  rowKey: (row: T) => string;
  sort: Sort | null;
  onSort: (sort: Sort) => void;
  rowClass?: (row: T) => string | undefined;
  rowAttributes?: (row: T) => Record<string, string>;
}) {
  const { caption, columns, rows, rowKey, sort, onSort, rowClass, rowAttributes } = props;
  const sorted = sortRows(rows, columns, sort);
  const sortable = columns.filter((c) => c.value);
  const sortId = `sort-${caption.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return (
    <>
      {sortable.length > 0 && (
        // On narrow screens the rows become cards without a header row: this select sorts them instead.
        <div className="field field-inline narrow-sort">
          <label htmlFor={sortId}>Sort by</label>
          <select
            id={sortId}
            value={sort ? `${sort.key}:${sort.dir}` : ""}
            onChange={(e) => {
              const [key, dir] = e.target.value.split(":");
              if (key) onSort({ key, dir: dir === "desc" ? "desc" : "asc" });
            }}
          >
            {!sort && <option value="">as listed</option>}
            {sortable.flatMap((c) => [
              <option key={`${c.key}:asc`} value={`${c.key}:asc`}>
                {c.label} ▲
              </option>,
              <option key={`${c.key}:desc`} value={`${c.key}:desc`}>
                {c.label} ▼
              </option>,
            ])}
          </select>
        </div>
      )}
    <div className="table-scroll" tabIndex={0} role="region" aria-label={caption}>
      <table className="cards">
        <caption className="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            {columns.map((column) => {
              const active = sort?.key === column.key;
              const ariaSort = active ? (sort?.dir === "asc" ? "ascending" : "descending") : undefined;
              return (
                <th
                  key={column.key}
                  scope="col"
                  data-column={column.key}
                  aria-sort={ariaSort}
                  className={[column.numeric ? "num" : "", column.className ?? ""].join(" ").trim() || undefined}
                >
                  {column.value ? (
                    <button
                      type="button"
                      className="sort-button"
                      onClick={() => onSort({ key: column.key, dir: active && sort?.dir === "asc" ? "desc" : "asc" })}
                    >
                      {column.label}
                      <span className="sort-mark" aria-hidden="true">
                        {active ? (sort?.dir === "asc" ? "▲" : "▼") : "↕"}
                      </span>
                    </button>
                  ) : (
                    column.label
                  )}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {sorted.map((row) => (
            <tr key={rowKey(row)} className={rowClass?.(row)} {...rowAttributes?.(row)}>
              {columns.map((column) => (
                <td
                  key={column.key}
                  className={[column.numeric ? "num" : "", column.className ?? ""].join(" ").trim() || undefined}
                  data-label={column.label}
                >
                  <span className="cell">{column.render(row)}</span>
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
    </>
  );
}

/** The sort of a view from its URL parameters `sort` and `dir`. */
export function sortFromParams(params: URLSearchParams, fallback: Sort): Sort {
  const key = params.get("sort");
  const dir = params.get("dir");
  return key ? { key, dir: dir === "desc" ? "desc" : "asc" } : fallback;
}
