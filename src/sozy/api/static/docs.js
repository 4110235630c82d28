// Renders /openapi.json as a readable page: operations, parameters, bodies, responses, schemas.

const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};

function typeOf(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.oneOf) return schema.oneOf.map(typeOf).join(" | ");
  if (schema.type === "array") return `${typeOf(schema.items)}[]`;
  let text = schema.type || "object";
  if (schema.format) text += ` (${schema.format})`;
  if (schema.enum) text = schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.minimum !== undefined || schema.maximum !== undefined) text += ` ${schema.minimum ?? ""}…${schema.maximum ?? ""}`;
  if (schema.default !== undefined) text += `, default ${JSON.stringify(schema.default)}`;
  if (schema.nullable) text += " or null";
  return text;
}

// The spec's named schemas, for request bodies that refer to one.
let components = {};

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { textContent: h })))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", { textContent: c })))))));
}

function operation(path, method, op) {
  const body = el("div", { className: "op-body" });
  if (op.description) body.append(el("p", { className: "desc", textContent: op.description }));
  if (op.parameters?.length) {
    body.append(el("h3", { textContent: "Parameters" }),
      table(["name", "in", "type", "description"], op.parameters.map((p) => [p.name + (p.required ? " *" : ""), p.in, typeOf(p.schema), p.description || ""])));
  }
  if (op.requestBody) {
    body.append(el("h3", { textContent: "Request body" }),
      table(["content type", "schema"], Object.entries(op.requestBody.content).map(([type, media]) => [type, describeSchema(media.schema)])));
  }
  body.append(el("h3", { textContent: "Responses" }),
    table(["status", "description", "body"], Object.entries(op.responses).map(([status, r]) => [
      el("span", { className: `status s${status[0]}`, textContent: status }),
      r.description || "",
      Object.entries(r.content || {}).map(([type, media]) => `${type}: ${typeOf(media.schema)}`).join(", "),
    ])));
  return el("details", { className: "op", open: method === "post" },
    el("summary", {}, el("span", { className: `method ${method}`, textContent: method }), el("span", { className: "path", textContent: path }),
      el("span", { className: "summary", textContent: op.summary || "" })), body);
}

function describeSchema(schema) {
  if (schema?.$ref) return describeSchema(components[typeOf(schema)]);
  if (schema?.oneOf) return schema.oneOf.map(describeSchema).join("  or  ");
  if (schema?.properties) return "{" + Object.entries(schema.properties).map(([k, v]) => `${k}: ${typeOf(v)}`).join(", ") + "}";
  return typeOf(schema);
}

async function main() {
  const spec = await (await fetch("/openapi.json")).json();
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}`;
  document.getElementById("intro").append(el("p", { className: "desc", textContent: spec.info.description }));
  document.getElementById("curl").textContent =
    `curl -F image=@photo.jpg '${location.origin}/v1/search?k=5'\n` +
    `curl -H 'Content-Type: application/json' -d '{"image_url": "https://example.org/photo.jpg"}' ${location.origin}/v1/search`;
  components = spec.components.schemas;
  const ops = document.getElementById("ops");
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) ops.append(operation(path, method, op));
  }
  const schemas = document.getElementById("schemas");
  for (const [name, schema] of Object.entries(spec.components.schemas)) {
    const rows = Object.entries(schema.properties || {}).map(([k, v]) => [k + ((schema.required || []).includes(k) ? " *" : ""), typeOf(v), v.description || ""]);
    schemas.append(el("details", { className: "op" }, el("summary", {}, el("span", { className: "path", textContent: name })),
      el("div", { className: "op-body" }, schema.description ? el("p", { textContent: schema.description }) : null, table(["field", "type", "description"], rows))));
  }
}

main();
