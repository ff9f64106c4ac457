// Validates custom resources against their CRD schemas (kubernetes-models, generated from the
// projects' own CRDs). Reads a JSON array of objects on stdin; prints one line per invalid object
// and exits 1 when there is any, 2 when an object's kind has no schema here.
import * as externalSecrets from "@kubernetes-models/external-secrets/external-secrets.io/v1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = {
  "external-secrets.io/v1": externalSecrets,
  "monitoring.coreos.com/v1": monitoring,
};

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const objects = JSON.parse(Buffer.concat(chunks).toString("utf8"));

let invalid = 0;
let unknown = 0;
for (const object of objects) {
  const name = `${object.kind}/${object.metadata?.name}`;
  const Model = models[object.apiVersion]?.[object.kind];
  if (!Model) {
    console.log(`${name}: no schema for ${object.apiVersion} ${object.kind}`);
    unknown += 1;
    continue;
  }
  try {
    new Model(object).validate();
  } catch (error) {
    console.log(`${name}: ${error.message}`);
    invalid += 1;
  }
}
process.exit(unknown ? 2 : invalid ? 1 : 0);
