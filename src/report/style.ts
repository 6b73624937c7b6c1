/** The report's stylesheet: plain, print-friendly, readable numbers (tabular figures). */
export const REPORT_CSS = `
:root { --ink: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #f8fafc; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 28px 24px 40px; }
header h1 { margin: 0 0 2px; font-size: 24px; }
.subtitle { margin: 0 0 12px; color: var(--muted); }
.meta { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 2px 24px; margin: 0 0 18px; }
.meta div { display: flex; gap: 8px; min-width: 0; }
.meta dt { color: var(--muted); flex: none; }
.meta dd { margin: 0; overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 12px; margin-bottom: 8px; }
.card { background: white; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card-label { color: var(--muted); font-size: 12px; }
.card-value { font-size: 21px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
section { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin-top: 18px; }
h2 { margin: 0 0 4px; font-size: 17px; }
.note { margin: 0 0 10px; color: var(--muted); }
.grid { display: flex; flex-wrap: wrap; gap: 18px 28px; align-items: flex-start; }
figure.chart { margin: 0; max-width: 100%; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.table-wrap { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding-bottom: 6px; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { color: var(--muted); font-weight: 600; border-bottom: 1px solid #cbd5e1; }
tr.sum td { border-top: 1px solid #cbd5e1; font-weight: 600; }
tr.best td { background: #ecfdf5; }
a { color: var(--accent); }
ul.links { margin: 12px 0 0; padding-left: 18px; }
footer { color: var(--muted); font-size: 12px; margin-top: 18px; }
@media print { body { background: white; } section { break-inside: avoid; border: none; } }
`;
