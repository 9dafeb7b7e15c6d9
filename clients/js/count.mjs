// Count microalgae cells with the course's Gradio app, from JavaScript (Node 18+).
//
//   npm ci                     # once, installs @gradio/client (see package-lock.json)
//   node count.mjs URL IMAGE [THRESHOLD]
//
// URL is the app (http://127.0.0.1:7860/ for `make demo`) or a Space id ("user/space").
// Prints one JSON line: {"count": ..., "notes": "...", "detections": N, "image_url": "..."}.
// The same code runs in a browser or a React Native / Capacitor app: there,
// handle_file takes a File or Blob from the camera instead of a path.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { Client, handle_file } from "@gradio/client";

const [url, image, threshold] = process.argv.slice(2);
if (!url || !image) {
  console.error("usage: node count.mjs URL IMAGE [THRESHOLD]");
  process.exit(2);
}

const client = await Client.connect(url);
// A File keeps the file name (the app's messages use it); older Node falls back to a path.
const file =
  typeof File === "undefined"
    ? handle_file(image)
    : new File([await readFile(image)], basename(image));
const inputs = { image: file };
if (threshold !== undefined) inputs.threshold = Number(threshold);
const result = await client.predict("/count", inputs);
// result.data follows the app's outputs: [annotated image, count, table, notes]
const [annotated, count, table, notes] = result.data;
console.log(
  JSON.stringify({
    count,
    notes,
    detections: table?.data?.length ?? 0,
    image_url: annotated?.url ?? null,
  }),
);
client.close?.();
process.exit(0);
