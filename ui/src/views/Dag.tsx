// The plan as a DAG: one node per step (coloured by its state), an edge per dependency,
// laid out by dagre and drawn as SVG. A node is a link to that step's details.

import { Graph, layout } from "@dagrejs/dagre";
import { useMemo } from "preact/hooks";
import type { Step } from "../types";

const NODE_W = 190;
const NODE_H = 54;

interface Placed {
  step: Step;
  x: number;
  y: number;
}

function place(steps: Step[]) {
  const graph = new Graph();
  graph.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 46, marginx: 8, marginy: 8 });
  graph.setDefaultEdgeLabel(() => ({}));
  const known = new Set(steps.map((s) => s.step_id));
  for (const step of steps) graph.setNode(step.step_id, { width: NODE_W, height: NODE_H });
  for (const step of steps) {
    for (const dep of step.depends_on) if (known.has(dep)) graph.setEdge(dep, step.step_id);
  }
  layout(graph);
  const nodes: Placed[] = steps.map((step) => {
    const node = graph.node(step.step_id);
    return { step, x: node.x - NODE_W / 2, y: node.y - NODE_H / 2 };
  });
  const edges = graph.edges().map((edge) => ({
    id: `${edge.v}->${edge.w}`,
    points: graph.edge(edge).points ?? [],
  }));
  const label = graph.graph();
  return { nodes, edges, width: label.width ?? NODE_W, height: label.height ?? NODE_H };
}

function shorten(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function Dag(props: { steps: Step[] }) {
  const drawn = useMemo(() => place(props.steps), [props.steps]);
  if (props.steps.length === 0) {
    return <p class="state empty">No plan yet: the planner has not answered.</p>;
  }
  return (
    <div class="dag-wrap">
      <svg
        class="dag"
        role="group"
        aria-label="Plan: steps and their dependencies"
        viewBox={`0 0 ${drawn.width} ${drawn.height}`}
        width={drawn.width}
        height={drawn.height}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" class="arrow" />
          </marker>
        </defs>
        {drawn.edges.map((edge) => (
          <polyline
            key={edge.id}
            class="edge"
            marker-end="url(#arrow)"
            points={edge.points.map((p: { x: number; y: number }) => `${p.x},${p.y}`).join(" ")}
          />
        ))}
        {drawn.nodes.map(({ step, x, y }) => (
          <a
            key={step.step_id}
            href={`#step-${step.step_id}`}
            class={`node status-${step.status}`}
            data-step-id={step.step_id}
            data-status={step.status}
            aria-label={`Step ${step.index + 1}: ${step.title}, ${step.status}`}
            onClick={(event) => {
              // Hash links would change the route; scroll to the step instead.
              event.preventDefault();
              const target = document.getElementById(`step-${step.step_id}`);
              target?.scrollIntoView({ behavior: "smooth", block: "start" });
              target?.querySelector("summary")?.focus();
            }}
          >
            <rect x={x} y={y} width={NODE_W} height={NODE_H} rx="8" />
            <text x={x + 10} y={y + 21} class="node-title">
              {shorten(`${step.index + 1}. ${step.title}`, 26)}
            </text>
            <text x={x + 10} y={y + 41} class="node-status">
              {step.status}
            </text>
          </a>
        ))}
      </svg>
    </div>
  );
}
