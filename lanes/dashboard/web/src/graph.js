// A group's call graph as cytoscape elements: one node per service and subset a lane reaches,
// one edge per hop of each lane (coloured by lane), so a lane that falls back to base at a
// service is seen entering base's node there.

const PALETTE = ["#64748b", "#2563eb", "#d97706", "#16a34a", "#9333ea", "#db2777", "#0891b2"];

export function laneColours(group) {
  const colours = {};
  group.lanes.forEach((lane, index) => {
    colours[lane] = lane === group.fallback ? PALETTE[0] : PALETTE[1 + ((index - 1 + PALETTE.length - 1) % (PALETTE.length - 1))];
  });
  return colours;
}

function shortName(service) {
  return service.split("/").pop();
}

export function groupElements(group) {
  const colours = laneColours(group);
  const nodes = new Map();
  const edges = [];
  const gateway = `${group.name}|gateway`;
  nodes.set(gateway, { data: { id: gateway, label: "gateway", kind: "gateway" } });
  const nodeOf = (hop) => {
    if (hop.subset === null) {
      const id = `${group.name}|${hop.service}|outside`;
      nodes.set(id, { data: { id, label: `${shortName(hop.service)}\n(outside the group)`, kind: "outside", service: hop.service } });
      return id;
    }
    const id = `${group.name}|${hop.service}|${hop.subset}`;
    if (!nodes.has(id)) {
      const node = group.nodes.find((n) => n.id === hop.service) || { pods: [] };
      const pods = node.pods.includes(hop.subset) || hop.subset === group.fallback;
      nodes.set(id, {
        data: {
          id, label: `${shortName(hop.service)}\n${hop.subset}${pods ? "" : " (no pods)"}`,
          kind: "subset", service: hop.service, lane: hop.subset, colour: colours[hop.subset] || PALETTE[0],
        },
      });
    }
    return id;
  };
  for (const [lane, hops] of Object.entries(group.routes)) {
    const byService = {};
    for (const hop of hops) {
      const target = nodeOf(hop);
      byService[hop.service] = target;
      const source = hop.caller ? byService[hop.caller] : gateway;
      edges.push({
        data: {
          id: `${group.name}|${lane}|${source}->${target}`, source, target, lane,
          colour: colours[lane], label: hop.fallback ? `${lane} → ${hop.subset}` : lane,
          fallback: hop.fallback ? "yes" : "no",
        },
      });
    }
  }
  return [...nodes.values(), ...edges];
}

export const STYLE = [
  { selector: "node", style: {
    "label": "data(label)", "text-wrap": "wrap", "text-valign": "center", "text-halign": "center",
    "font-size": 11, "shape": "round-rectangle", "width": 110, "height": 42,
    "background-color": "#f8fafc", "border-width": 2, "border-color": "data(colour)",
  } },
  { selector: "node[kind = 'gateway']", style: { "shape": "ellipse", "border-color": "#0f172a", "width": 80 } },
  { selector: "node[kind = 'outside']", style: { "border-style": "dashed", "border-color": "#94a3b8" } },
  { selector: "node.failing", style: { "background-color": "#fee2e2", "border-color": "#dc2626", "border-width": 4 } },
  { selector: "edge", style: {
    "curve-style": "bezier", "target-arrow-shape": "triangle", "width": 2,
    "line-color": "data(colour)", "target-arrow-color": "data(colour)",
    "label": "data(label)", "font-size": 9, "text-rotation": "autorotate", "text-background-color": "#fff",
    "text-background-opacity": 1,
  } },
  { selector: "edge[fallback = 'yes']", style: { "line-style": "dashed" } },
];
