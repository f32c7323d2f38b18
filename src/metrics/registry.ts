// Counters, gauges and histograms in the Prometheus text format, kept as flat series -> value
// samples. Flat samples make the processes of a cluster easy to add up: a scrape sums them by
// series name, whatever each process has seen.

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
}

/** Series name with its labels (`name{a="b"}`) -> value, in the order series were first seen. */
export type Samples = ReadonlyArray<readonly [string, number]>;

export interface Counter {
  /** Adds to the series with these labels (already rendered by `labels()`, or '' for none). */
  inc(labelText?: string, by?: number): void;
  /** For a count another module keeps: takes its running total. */
  set(value: number, labelText?: string): void;
}

export interface Histogram {
  observe(value: number, labelText?: string): void;
}

export interface MetricRegistry {
  /** `preset`: label sets shown as 0 before anything happens (default: the one unlabelled series). */
  counter(name: string, help: string, preset?: readonly string[]): Counter;
  gauge(name: string, help: string): Pick<Counter, 'set'>;
  /** `preset` as for counters. */
  histogram(name: string, help: string, buckets: readonly number[], preset?: readonly string[]): Histogram;
  readonly families: readonly MetricFamily[];
  samples(): Samples;
}

/** `{a="x",b="y"}` for the given labels, '' for none; values escaped as the text format asks. */
export function labels(values: Readonly<Record<string, string>>): string {
  const parts = Object.entries(values).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** Adds `le` to a rendered label set. */
function withBound(labelText: string, bound: string): string {
  const le = `le="${bound}"`;
  return labelText === '' ? `{${le}}` : `${labelText.slice(0, -1)},${le}}`;
}

export function createMetricRegistry(): MetricRegistry {
  const families: MetricFamily[] = [];
  const values = new Map<string, number>();
  const add = (series: string, by: number) => values.set(series, (values.get(series) ?? 0) + by);
  const family = (name: string, help: string, type: MetricType) => families.push({ name, help, type });

  return {
    families,
    counter(name, help, preset = ['']) {
      family(name, help, 'counter');
      // Zero rather than absent, so a rate() over the first increments is right.
      for (const labelText of preset) values.set(name + labelText, 0);
      return { inc: (labelText = '', by = 1) => add(name + labelText, by), set: (value, labelText = '') => void values.set(name + labelText, value) };
    },
    gauge(name, help) {
      family(name, help, 'gauge');
      return { set: (value, labelText = '') => void values.set(name + labelText, value) };
    },
    histogram(name, help, buckets, preset = ['']) {
      family(name, help, 'histogram');
      const bounds = buckets.map(String);
      // Series keys are built once per label set: observe() runs for every request.
      const seriesOf = new Map<string, { buckets: string[]; sum: string; count: string }>();
      const series = (labelText: string) => {
        let s = seriesOf.get(labelText);
        if (!s) {
          s = {
            buckets: [...bounds, '+Inf'].map((b) => `${name}_bucket${withBound(labelText, b)}`),
            sum: `${name}_sum${labelText}`,
            count: `${name}_count${labelText}`,
          };
          seriesOf.set(labelText, s);
          for (const key of [...s.buckets, s.sum, s.count]) values.set(key, values.get(key) ?? 0);
        }
        return s;
      };
      for (const labelText of preset) series(labelText);
      return {
        observe(value, labelText = '') {
          const s = series(labelText);
          // Cumulative buckets, as the format defines them: every bound at or above the value.
          for (let i = 0; i < buckets.length; i++) if (value <= buckets[i]!) add(s.buckets[i]!, 1);
          add(s.buckets[buckets.length]!, 1);
          add(s.sum, value);
          add(s.count, 1);
        },
      };
    },
    samples: () => [...values],
  };
}

/** Sums several processes' samples series by series (the first's order first). */
export function mergeSamples(all: readonly Samples[]): Samples {
  const total = new Map<string, number>();
  for (const samples of all) for (const [series, value] of samples) total.set(series, (total.get(series) ?? 0) + value);
  return [...total];
}

/** The family a series belongs to: its name without labels and without a histogram's suffix. */
function familyOf(series: string, histograms: ReadonlySet<string>): string {
  const brace = series.indexOf('{');
  const name = brace === -1 ? series : series.slice(0, brace);
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix) && histograms.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return name;
}

/** The Prometheus text exposition format (version 0.0.4) of these families and samples. */
export function renderPrometheus(families: readonly MetricFamily[], samples: Samples): string {
  const histograms = new Set(families.filter((f) => f.type === 'histogram').map((f) => f.name));
  const byFamily = new Map<string, string[]>(families.map((f) => [f.name, []]));
  for (const [series, value] of samples) byFamily.get(familyOf(series, histograms))?.push(`${series} ${formatValue(value)}`);
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...byFamily.get(f.name)!);
  }
  return `${out.join('\n')}\n`;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  // Sums of seconds keep microsecond precision; counts print as integers.
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(12)));
}
