// validate.mjs: every YAML document in the given files, checked offline against the Kubernetes
// API schemas of the npm package kubernetes-models (no API server is needed or contacted).
//
//   node validate.mjs [--modules DIR] [--json OUT] FILE...
//
// --modules names the node_modules directory that `npm ci` made from this directory's
// package-lock.json (default: ./node_modules beside this file); --json writes the parsed
// documents as [{file, index, object}] for tests that read the manifests' values.
//
// A document fails when its apiVersion/kind is not a Kubernetes API type, when the type's schema
// rejects it (types, required fields, enums), when it carries a field the schema does not know
// (what `kubectl apply --validate=strict` refuses), or when it has no metadata.name. The YAML is
// read as YAML 1.1, as Kubernetes reads it (0440 is octal, yes/no are booleans).
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

function usage(message) {
  console.error(`validate.mjs: ${message}`);
  console.error("usage: node validate.mjs [--modules DIR] [--json OUT] FILE...");
  process.exit(64);
}

const args = process.argv.slice(2);
let modules = join(dirname(fileURLToPath(import.meta.url)), "node_modules");
let jsonOut = null;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--modules" || args[i] === "--json") {
    if (i + 1 >= args.length) usage(`${args[i]} needs a value`);
    if (args[i] === "--modules") modules = resolve(args[++i]);
    else jsonOut = resolve(args[++i]);
  } else if (args[i].startsWith("-")) {
    usage(`unknown option ${args[i]}`);
  } else {
    files.push(args[i]);
  }
}
if (files.length === 0) usage("no file to validate");
if (!existsSync(join(modules, "kubernetes-models")) || !existsSync(join(modules, "yaml"))) {
  console.error(`validate.mjs: ${modules} holds no kubernetes-models and yaml ` +
    `(run "npm ci" in ${dirname(fileURLToPath(import.meta.url))}, or pass --modules)`);
  process.exit(69);
}

// The modules live outside this checkout (a cache keyed by package-lock.json), so they are
// resolved from that directory rather than from this file's location.
const requireFromModules = createRequire(join(modules, "resolve-from-here.cjs"));
const YAML = requireFromModules("yaml");

const API_VERSION = /^(?:[a-z0-9]([a-z0-9.-]*[a-z0-9])?\/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$/;
const KIND = /^[A-Z][A-Za-z0-9]*$/;

// apiVersion "apps/v1", kind "StatefulSet" → kubernetes-models/apps/v1/StatefulSet; the core
// group ("v1") → kubernetes-models/v1/Service. Only classes that are API kinds themselves (with a
// static apiVersion and kind) count: v1/Container exists in the package but is no kind.
function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== "string" || !API_VERSION.test(apiVersion)) {
    return { error: `apiVersion ${JSON.stringify(apiVersion)} is not a Kubernetes API version` };
  }
  if (typeof kind !== "string" || !KIND.test(kind)) {
    return { error: `kind ${JSON.stringify(kind)} is not a Kubernetes kind` };
  }
  let exported;
  try {
    exported = requireFromModules(`kubernetes-models/${apiVersion}/${kind}`);
  } catch (e) {
    if (e.code !== "MODULE_NOT_FOUND" && e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e;
    return { error: `unknown kind ${apiVersion}/${kind} (not in kubernetes-models)` };
  }
  const cls = exported[kind];
  if (typeof cls !== "function" || cls.apiVersion !== apiVersion || cls.kind !== kind) {
    return { error: `unknown kind ${apiVersion}/${kind} (a type, not an API kind)` };
  }
  return { cls };
}

// Which fields the schema's validator looked at: every object is wrapped in a Proxy that records
// the properties read. The compiled validators read exactly the properties their schema names,
// and every key of a map (labels, resources.limits, ConfigMap data), so a key never read is a key
// the schema does not have.
function tracked(value, path, objects, cache) {
  if (value === null || typeof value !== "object") return value;
  if (cache.has(value)) return cache.get(value);
  const read = new Set();
  if (!Array.isArray(value)) objects.push({ path, value, read });
  const proxy = new Proxy(value, {
    get(target, property, receiver) {
      const v = Reflect.get(target, property, receiver);
      if (typeof property !== "string" || !Object.prototype.hasOwnProperty.call(target, property)) {
        return v;
      }
      read.add(property);
      return tracked(v, Array.isArray(target) ? `${path}[${property}]` : `${path}.${property}`,
        objects, cache);
    },
  });
  cache.set(value, proxy);
  return proxy;
}

function unknownFields(cls, object) {
  const objects = [];
  try {
    cls.prototype.validate.call(tracked(object, "", objects, new WeakMap()));
  } catch {
    // Schema errors are reported by the plain validation; this pass only looks at what was read.
  }
  const unknown = [];
  for (const { path, value, read } of objects) {
    for (const key of Object.keys(value)) {
      if (!read.has(key)) unknown.push(`${path}.${key}`.replace(/^\./, ""));
    }
  }
  return unknown;
}

let failures = 0;
let count = 0;
const parsed = [];
for (const file of files) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    console.error(`FAIL ${file}: cannot read: ${e.message}`);
    failures++;
    continue;
  }
  const docs = YAML.parseAllDocuments(text, { version: "1.1", prettyErrors: true });
  docs.forEach((doc, index) => {
    const where = `${file} (document ${index + 1})`;
    const problems = [...doc.errors, ...doc.warnings].map((e) => `YAML: ${e.message.split("\n")[0]}`);
    if (problems.length === 0 && doc.contents === null) return;   // an empty document ("---" at the end)
    const object = problems.length === 0 ? doc.toJS() : null;
    if (object !== null && (typeof object !== "object" || Array.isArray(object))) {
      problems.push("is not a mapping (expected a Kubernetes object)");
    }
    let label = "?";
    if (problems.length === 0) {
      label = `${object.kind}/${object.metadata?.name ?? "?"}`;
      const { cls, error } = modelClass(object.apiVersion, object.kind);
      if (error) {
        problems.push(error);
      } else {
        try {
          new cls(object).validate();
        } catch (e) {
          if (!e.errors) throw e;
          for (const err of e.errors) {
            const path = err.instancePath.replace(/\/([0-9]+)/g, "[$1]").replace(/^\//, "").replaceAll("/", ".");
            problems.push(`${path || "(root)"} ${err.message}`);
          }
        }
        for (const path of unknownFields(cls, object)) problems.push(`${path}: unknown field`);
        if (typeof object.metadata?.name !== "string" || object.metadata.name === "") {
          problems.push("metadata.name is missing");
        }
      }
    }
    count++;
    if (problems.length > 0) {
      failures++;
      console.log(`FAIL ${where} ${label}`);
      for (const p of problems) console.log(`     ${p}`);
    } else {
      console.log(`ok   ${where} ${object.apiVersion} ${label}`);
      parsed.push({ file, index, object });
    }
  });
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(parsed, null, 1));
console.log(`${count - failures} passed, ${failures} failed`);
process.exit(failures === 0 && count > 0 ? 0 : 1);
