/** Plain-text and Markdown tables for CLI output and reports. */
export function formatTable(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  return cells.map((r, j) => {
    const line = r.map((c, i) => String(c).padEnd(widths[i]!)).join('  ');
    return j === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
  }).join('\n');
}

export function markdownTable(headers: string[], rows: (string | number)[][]): string {
  const fmtRow = (r: (string | number)[]) => `| ${r.map((c) => (typeof c === 'number' ? fmt(c) : c)).join(' | ')} |`;
  return [fmtRow(headers), `|${headers.map(() => '---').join('|')}|`, ...rows.map(fmtRow)].join('\n');
}

function fmt(n: number): string {
  if (Number.isInteger(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(1);
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toFixed(4);
}
