// Small display helpers shared by the pages.

export function when(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function usd(value: number | null | undefined): string {
  return value === null || value === undefined ? "no limit" : `$${value.toFixed(4)}`;
}

export function tokens(value: number | null | undefined): string {
  return value === null || value === undefined ? "no limit" : value.toLocaleString();
}

export const TERMINAL_STATUSES = new Set(["completed", "failed", "cancelled"]);
