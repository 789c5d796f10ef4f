/** A uPlot time-series chart that follows its container's width. */
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';

export function TimeChart({ title, data, color, format, integer = false }: { title: string; data: [number[], number[]]; color: string; format: (v: number) => string; integer?: boolean }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const formatRef = useRef(format);
  formatRef.current = format;

  useEffect(() => {
    const el = box.current;
    if (el === null) return undefined;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 180,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        { stroke: '#5b6472', grid: { stroke: '#eef0f3' } },
        { stroke: '#5b6472', grid: { stroke: '#eef0f3' }, size: 64, ...(integer ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10_000] } : {}), values: (_u, ticks) => ticks.map((t) => formatRef.current(t)) },
      ],
      series: [{}, { label: title, stroke: color, width: 2, fill: `${color}22`, points: { show: false } }],
    };
    plot.current = new uPlot(opts, [[], []], el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: 180 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [title, color, integer]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return <div ref={box} className="chart" aria-hidden="true" />;
}
