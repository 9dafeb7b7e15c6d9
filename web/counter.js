// Count microalgae cells in the browser: the course's ONNX model on onnxruntime-web (WASM, or WebGPU).
//
// A port of utils/processing.py, step for step, so that the page counts the same cells as
// Python does on the same photo:
//
//   photo -> resize to the working scale -> tiles -> normalise -> [graph]
//         -> threshold -> keep what each tile owns -> NMS -> rescale -> detections
//
// * The inference config (input size, mean/std, thresholds, class names) is read from the
//   ONNX file's own metadata_props, as utils.runtime.OnnxPredictor does; config.json next to
//   the model is the fallback for a model exported without it.
// * The letterbox resize is Pillow's BILINEAR resize re-implemented on the decoded RGBA
//   pixels (separable triangle filter whose support grows with the downscale factor, the
//   same fixed-point arithmetic), not canvas drawImage, whose smoothing differs by browser.
// * Threshold and NMS compare float32 numbers as NumPy does (Math.fround), so a score or an
//   IoU that sits on the boundary falls on the same side in both.
//
// Nothing leaves the page: the photo is decoded, resized and counted locally.
// The pure functions (no DOM, no onnxruntime) are exported for tests and other apps.

export const CONFIG_KEY = "deploy_without_tears.inference_config";
export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];
export const CANDIDATES_PER_KEPT = 4; // processing.boxes.CANDIDATES_PER_KEPT
const CONFIG_DEFAULTS = {
  mean: IMAGENET_MEAN,
  std: IMAGENET_STD,
  score_threshold: 0.5,
  nms_iou: 0.6,
  max_detections: 300,
  min_score: 0.05,
  scale: null, // working pixels per photo pixel; null: the whole photo into one input
  tile_overlap: 64,
  cell_size: null,
};

// ---------------------------------------------------------------------------- the config

/** The metadata_props of an ONNX file ({key: value}), read from its protobuf bytes.
 *
 * onnxruntime-web does not expose custom metadata, so we walk the top-level fields of the
 * ModelProto (field 14 is `repeated StringStringEntryProto metadata_props`), skipping the
 * graph without decoding it.
 */
export function readOnnxMetadata(bytes) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const text = new TextDecoder("utf-8");
  let pos = 0;
  const varint = (end) => {
    let value = 0;
    let factor = 1;
    for (;;) {
      if (pos >= end) throw new Error("truncated ONNX file (varint runs past the end)");
      const byte = data[pos++];
      value += (byte & 0x7f) * factor;
      if (byte < 0x80) return value;
      factor *= 128;
    }
  };
  const skip = (wire, end) => {
    if (wire === 0) varint(end);
    else if (wire === 1) pos += 8;
    else if (wire === 2) {
      const length = varint(end); // read first: `pos += varint()` would add to the old pos
      pos += length;
    }
    else if (wire === 5) pos += 4;
    else throw new Error(`not an ONNX file (unexpected protobuf wire type ${wire})`);
    if (pos > end) throw new Error("truncated ONNX file (a field runs past the end)");
  };
  const props = {};
  const end = data.length;
  while (pos < end) {
    const tag = varint(end);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 14 && wire === 2) {
      const length = varint(end);
      const stop = pos + length;
      if (stop > end) throw new Error("truncated ONNX file (metadata runs past the end)");
      let key = "";
      let value = "";
      while (pos < stop) {
        const inner = varint(stop);
        const innerField = Math.floor(inner / 8);
        const innerWire = inner % 8;
        if ((innerField === 1 || innerField === 2) && innerWire === 2) {
          const length = varint(stop);
          const str = text.decode(data.subarray(pos, pos + length));
          pos += length;
          if (innerField === 1) key = str;
          else value = str;
        } else {
          skip(innerWire, stop);
        }
      }
      props[key] = value;
    } else {
      skip(wire, end);
    }
  }
  return props;
}

/** An InferenceConfig object (the fields of utils.processing.InferenceConfig), checked. */
export function configFromDict(dict, source = "the model") {
  const missing = ["model_name", "class_names", "image_size"].filter((k) => !(k in dict));
  if (missing.length) {
    throw new Error(`${source}: the inference config lacks ${missing.join(", ")}; re-export the model`);
  }
  const config = { ...CONFIG_DEFAULTS, ...dict };
  config.class_names = [...config.class_names];
  config.image_size = Number(config.image_size);
  if (!Number.isInteger(config.image_size) || config.image_size <= 0) {
    throw new Error(`${source}: image_size must be a positive integer, got ${dict.image_size}`);
  }
  return config;
}

/** The config stored in the ONNX metadata, or null when the file carries none. */
export function configFromOnnx(bytes, source = "the model") {
  const raw = readOnnxMetadata(bytes)[CONFIG_KEY];
  return raw === undefined ? null : configFromDict(JSON.parse(raw), source);
}

// ---------------------------------------------------------------------------- letterbox

const PRECISION_BITS = 32 - 8 - 2; // Pillow's fixed point for 8-bit images
const ONE = 2 ** PRECISION_BITS;

function bilinearFilter(x) {
  x = Math.abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc (Resample.c) for the BILINEAR filter. */
function precomputeCoeffs(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1.0); // downscaling widens the filter: antialiasing
  const support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const weights = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5); // C's (int) cast truncates
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = bilinearFilter((x + xmin - center + 0.5) * ss);
      weights[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0.0 ? weights[x] / ww : weights[x];
      kk[xx * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * ONE : 0.5 + k * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(ss) {
  const v = Math.floor(ss / ONE); // C's arithmetic shift, then Pillow's clip table
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Resize RGB(A) pixels like Pillow's ``Image.resize(size, Image.BILINEAR)`` on an RGB image.
 *
 * ``src``: width*height*channels bytes (channels 3 or 4; alpha is ignored). Returns
 * newWidth*newHeight*3 bytes (RGB). Two passes, horizontal first, each rounded to 8 bits,
 * exactly as Pillow does, so the result is bit-identical to Pillow's.
 */
export function resizeBilinear(src, width, height, newWidth, newHeight, channels = 4) {
  const needH = newWidth !== width;
  const needV = newHeight !== height;
  const vert = precomputeCoeffs(height, newHeight);
  const first = vert.bounds[0];
  const last = vert.bounds[newHeight * 2 - 2] + vert.bounds[newHeight * 2 - 1];
  let tmp;
  let tmpWidth;
  let tmpStride;
  let rowOffset = 0;
  if (needH) {
    const horiz = precomputeCoeffs(width, newWidth);
    const rows = last - first;
    tmp = new Uint8Array(newWidth * rows * 3);
    const { ksize, bounds, kk } = horiz;
    for (let yy = 0; yy < rows; yy++) {
      const rowStart = (yy + first) * width * channels;
      for (let xx = 0; xx < newWidth; xx++) {
        const xmin = bounds[xx * 2];
        const xmax = bounds[xx * 2 + 1];
        const kOff = xx * ksize;
        let s0 = ONE / 2;
        let s1 = ONE / 2;
        let s2 = ONE / 2;
        for (let x = 0; x < xmax; x++) {
          const k = kk[kOff + x];
          const p = rowStart + (x + xmin) * channels;
          s0 += src[p] * k;
          s1 += src[p + 1] * k;
          s2 += src[p + 2] * k;
        }
        const o = (yy * newWidth + xx) * 3;
        tmp[o] = clip8(s0);
        tmp[o + 1] = clip8(s1);
        tmp[o + 2] = clip8(s2);
      }
    }
    tmpWidth = newWidth;
    tmpStride = 3;
    rowOffset = first; // the vertical bounds are shifted to the rows kept in tmp
  } else {
    tmp = src;
    tmpWidth = width;
    tmpStride = channels;
  }
  const out = new Uint8Array(newWidth * newHeight * 3);
  if (!needV) {
    for (let i = 0, n = newWidth * newHeight; i < n; i++) {
      out[i * 3] = tmp[i * tmpStride];
      out[i * 3 + 1] = tmp[i * tmpStride + 1];
      out[i * 3 + 2] = tmp[i * tmpStride + 2];
    }
    return out;
  }
  const { ksize, bounds, kk } = vert;
  for (let yy = 0; yy < newHeight; yy++) {
    const ymin = bounds[yy * 2] - rowOffset;
    const ymax = bounds[yy * 2 + 1];
    const kOff = yy * ksize;
    for (let xx = 0; xx < newWidth; xx++) {
      let s0 = ONE / 2;
      let s1 = ONE / 2;
      let s2 = ONE / 2;
      for (let y = 0; y < ymax; y++) {
        const k = kk[kOff + y];
        const p = ((y + ymin) * tmpWidth + xx) * tmpStride;
        s0 += tmp[p] * k;
        s1 += tmp[p + 1] * k;
        s2 += tmp[p + 2] * k;
      }
      const o = (yy * newWidth + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

/** Python's round(): halves go to the even neighbour (round(2.5) == 2). */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** processing.letterbox: longer side to ``size``, keep the aspect ratio, pad right/bottom black.
 *
 * ``pixels``: RGBA (or RGB with channels=3) bytes. Returns {rgb: size*size*3 bytes, scale}.
 */
export function letterbox(pixels, width, height, size, channels = 4) {
  const scale = size / Math.max(width, height);
  const newWidth = Math.max(1, roundHalfEven(width * scale));
  const newHeight = Math.max(1, roundHalfEven(height * scale));
  let resized;
  if (newWidth === width && newHeight === height) {
    resized = resizeBilinear(pixels, width, height, width, height, channels); // a plain RGB copy
  } else {
    resized = resizeBilinear(pixels, width, height, newWidth, newHeight, channels);
  }
  if (newWidth === size && newHeight === size) return { rgb: resized, scale, newWidth, newHeight };
  const rgb = new Uint8Array(size * size * 3); // black padding, like the eyepiece surround
  for (let y = 0; y < newHeight; y++) {
    rgb.set(resized.subarray(y * newWidth * 3, (y + 1) * newWidth * 3), y * size * 3);
  }
  return { rgb, scale, newWidth, newHeight };
}

/** processing.normalize: ``3 x S x S`` float32, standardised with mean/std.
 *
 * The same float32 arithmetic as the NumPy code, so the tensors are bit-identical:
 * ``pixel * float32(1 / (255 std)) - float32(mean / std)``.
 */
export function normalize(rgb, size, mean = IMAGENET_MEAN, std = IMAGENET_STD) {
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const s = f(std[c]);
    const scale = f(1 / f(255 * s));
    const shift = f(f(mean[c]) / s);
    for (let i = 0; i < plane; i++) {
      out[c * plane + i] = f(f(rgb[i * 3 + c] * scale) - shift);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------- post-processing

/** processing.nms: greedy non-maximum suppression in float32; indices kept, best first.
 *
 * ``boxes``: Float32Array of n*4 (x1, y1, x2, y2), ``scores``: Float32Array of n; ``top``:
 * only the best ``top`` boxes take part (processing.boxes.CANDIDATES_PER_KEPT says why).
 */
export function nms(boxes, scores, iouThreshold, top = Infinity) {
  const f = Math.fround;
  const order = Array.from({ length: scores.length }, (_, i) => i);
  order.sort((a, b) => scores[b] - scores[a] || a - b); // np.argsort(-scores, kind="stable")
  const areas = new Float32Array(order.length);
  for (let i = 0; i < order.length; i++) {
    const w = Math.max(f(boxes[i * 4 + 2] - boxes[i * 4]), 0);
    const h = Math.max(f(boxes[i * 4 + 3] - boxes[i * 4 + 1]), 0);
    areas[i] = f(w * h);
  }
  const limit = f(iouThreshold);
  const eps = f(1e-9);
  const suppressed = new Uint8Array(order.length);
  if (order.length > top) order.length = top;
  const n = order.length;
  const keep = [];
  for (let a = 0; a < n; a++) {
    const i = order[a];
    if (suppressed[i]) continue;
    keep.push(i);
    const x1 = boxes[i * 4];
    const y1 = boxes[i * 4 + 1];
    const x2 = boxes[i * 4 + 2];
    const y2 = boxes[i * 4 + 3];
    for (let b = a + 1; b < n; b++) {
      const j = order[b];
      if (suppressed[j]) continue;
      const w = Math.max(f(Math.min(x2, boxes[j * 4 + 2]) - Math.max(x1, boxes[j * 4])), 0);
      const h = Math.max(f(Math.min(y2, boxes[j * 4 + 3]) - Math.max(y1, boxes[j * 4 + 1])), 0);
      const inter = f(w * h);
      const iou = f(inter / Math.max(f(f(areas[i] + areas[j]) - inter), eps));
      if (!(iou <= limit)) suppressed[j] = 1;
    }
  }
  return keep;
}

/** Detections.counts_by_class: {class name: count}, every class of the model listed (0 too),
 * in the model's order; a label without a name is keyed by its index, as in Python. */
export function countsByClass(labels, classNames = []) {
  const counts = Object.fromEntries(classNames.map((name) => [name, 0]));
  for (const label of labels) {
    const name = label >= 0 && label < classNames.length ? classNames[label] : String(label);
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/** processing.postprocess_one: raw outputs of one image -> detections in original pixels.
 *
 * ``boxes``: Float32Array A*4 (input pixels), ``scores``: Float32Array A*C.
 * Returns {boxes: [[x1, y1, x2, y2]...], scores, labels, count, counts}: ``mergeTiles`` with
 * one tile, the same shared path as in Python.
 */
export function postprocess(boxes, scores, numClasses, config, scale, width, height, threshold) {
  const size = config.image_size;
  const grid = { width, height, scale, workWidth: size, workHeight: size, size, xs: [0], ys: [0], tiles: 1 };
  return mergeTiles([{ boxes, scores }], numClasses, grid, config, threshold);
}

// ---------------------------------------------------------------------------- tiling

// processing.FIT_SLACK, MAX_TILES, MIN_WORKING_SIDE, SCALE_WARNING
const FIT_SLACK = 1.15;
export const MAX_TILES = 256;
const MIN_WORKING_SIDE = 32;
const SCALE_WARNING = 2.0;

/** processing.tile_starts: left edges of ``size`` tiles covering ``length``, spread evenly. */
export function tileStarts(length, size, overlap) {
  if (length <= size) return [0];
  const o = Math.min(Math.max(0, Math.trunc(overlap)), Math.floor(size / 2));
  const n = Math.ceil((length - o) / (size - o));
  return Array.from({ length: n }, (_, i) => Math.floor((i * (length - size)) / (n - 1) + 0.5));
}

/** processing.seams: where ownership passes from one tile to the next. */
function seams(starts, size) {
  return starts.slice(1).map((next, i) => (next + starts[i] + size) / 2);
}

/** processing.plan_tiles: the tile grid of a photo at ``scale`` (default: the model's). */
export function planTiles(width, height, config, scale = null) {
  const size = config.image_size;
  let s = scale ?? config.scale ?? null;
  if (s === null) s = size / Math.max(width, height); // an older model: the whole photo into one input
  if (!(Number.isFinite(s) && s > 0)) throw new Error(`scale must be a positive number, got ${s}`);
  const longer = Math.max(width, height);
  if (size < longer * s && longer * s <= size * FIT_SLACK) s = size / longer; // fit one input
  const workWidth = Math.max(1, roundHalfEven(width * s));
  const workHeight = Math.max(1, roundHalfEven(height * s));
  const shown = Number(s.toPrecision(3));
  if (Math.min(workWidth, workHeight) < MIN_WORKING_SIDE && Math.max(workWidth, workHeight) < size) {
    throw new Error(
      `the photo is ${width} x ${height} px: at the model's scale (${shown}) that is ` +
        `${workWidth} x ${workHeight} px, too small for its cells to be seen; send the original photo, not a thumbnail`,
    );
  }
  const xs = tileStarts(workWidth, size, config.tile_overlap);
  const ys = tileStarts(workHeight, size, config.tile_overlap);
  if (xs.length * ys.length > MAX_TILES) {
    throw new Error(
      `the photo is ${width} x ${height} px: at the model's scale (${shown}) it needs ` +
        `${xs.length * ys.length} tiles, more than ${MAX_TILES}; crop it to the field of view or downscale it`,
    );
  }
  return { width, height, scale: s, workWidth, workHeight, size, xs, ys, tiles: xs.length * ys.length };
}

/** processing.tiles: the ``S x S`` RGB crop of the working image at (x, y), padded black. */
export function tileAt(work, grid, x, y) {
  const size = grid.size;
  const out = new Uint8Array(size * size * 3);
  const w = Math.min(size, grid.workWidth - x);
  const h = Math.min(size, grid.workHeight - y);
  for (let row = 0; row < h; row++) {
    const from = ((y + row) * grid.workWidth + x) * 3;
    out.set(work.subarray(from, from + w * 3), row * size * 3);
  }
  return out;
}

/** processing.merge_tiles: raw outputs of every tile ([{boxes, scores}], row by row) -> detections.
 *
 * ``counts`` holds the count of each class (``countsByClass``); ``count`` is their total. */
export function mergeTiles(tiles, numClasses, grid, config, threshold) {
  const f = Math.fround;
  const t = threshold === undefined || threshold === null ? config.score_threshold : Number(threshold);
  const floor = f(Math.max(t, config.min_score));
  const size = grid.size;
  const margin = config.tile_overlap / 4; // a band past each seam: see processing.merge_tiles
  const xBounds = [-Infinity, ...seams(grid.xs, size), Infinity];
  const yBounds = [-Infinity, ...seams(grid.ys, size), Infinity];
  const candBoxes = [];
  const candScores = [];
  const candLabels = [];
  let index = 0;
  grid.ys.forEach((y0, row) => {
    grid.xs.forEach((x0, col) => {
      const { boxes, scores } = tiles[index++];
      const anchors = scores.length / numClasses;
      for (let a = 0; a < anchors; a++) {
        for (let c = 0; c < numClasses; c++) {
          const s = scores[a * numClasses + c];
          if (!(s >= floor)) continue;
          if (grid.tiles > 1) {
            const cx = f(f(f(boxes[a * 4] + boxes[a * 4 + 2]) / 2) + x0);
            const cy = f(f(f(boxes[a * 4 + 1] + boxes[a * 4 + 3]) / 2) + y0);
            const inX = cx >= xBounds[col] - margin && cx < xBounds[col + 1] + margin;
            if (!(inX && cy >= yBounds[row] - margin && cy < yBounds[row + 1] + margin)) continue;
          }
          candScores.push(s);
          candLabels.push(c);
          for (let k = 0; k < 4; k++) {
            const clipped = Math.min(Math.max(boxes[a * 4 + k], 0), size);
            candBoxes.push(f(clipped + (k % 2 === 0 ? x0 : y0)));
          }
        }
      }
    });
  });
  const n = candScores.length;
  const kept = Float32Array.from(candBoxes);
  const span = Math.max(grid.workWidth, grid.workHeight, size) * 4.0;
  const shifted = new Float32Array(n * 4); // class-aware: each class in its own region
  for (let i = 0; i < n; i++) {
    const offset = f(candLabels[i] * f(span));
    for (let k = 0; k < 4; k++) shifted[i * 4 + k] = f(kept[i * 4 + k] + offset);
  }
  const limit = config.max_detections * grid.tiles;
  const top = limit * CANDIDATES_PER_KEPT;
  const keep = nms(shifted, Float32Array.from(candScores), config.nms_iou, top).slice(0, limit);
  const out = { boxes: [], scores: [], labels: [], count: keep.length, tiles: grid.tiles, scale: grid.scale };
  for (const i of keep) {
    const b = [0, 1, 2, 3].map((k) => f(kept[i * 4 + k] / f(grid.scale))); // float32, as NumPy
    out.boxes.push([
      Math.min(Math.max(b[0], 0), grid.width),
      Math.min(Math.max(b[1], 0), grid.height),
      Math.min(Math.max(b[2], 0), grid.width),
      Math.min(Math.max(b[3], 0), grid.height),
    ]);
    out.scores.push(candScores[i]);
    out.labels.push(candLabels[i]);
  }
  out.counts = countsByClass(out.labels, config.class_names);
  out.note = scaleNote(out, config);
  return out;
}

/** processing.cell_ratio: median detected cell side (working px) over the training one, or null. */
function cellRatio(result, config) {
  if (!config.cell_size || result.count < 5) return null;
  const sides = result.boxes.map(([x1, y1, x2, y2]) => Math.sqrt(Math.max(x2 - x1, 0) * Math.max(y2 - y1, 0)));
  sides.sort((a, b) => a - b);
  const m = sides.length;
  const median = m % 2 ? sides[(m - 1) / 2] : (sides[m / 2 - 1] + sides[m / 2]) / 2;
  return Math.max(median * result.scale, 1e-6) / config.cell_size;
}

/** processing.scale_note: a sentence when the cells are far larger or smaller than in training. */
export function scaleNote(result, config) {
  const ratio = cellRatio(result, config);
  if (ratio === null || (ratio >= 1 / SCALE_WARNING && ratio <= SCALE_WARNING)) return "";
  const better = Number((result.scale / ratio).toPrecision(3));
  result.betterScale = result.scale / ratio;
  const factor = (ratio > 1 ? ratio : 1 / ratio).toFixed(1);
  return (
    `The cells look ${factor}x ${ratio > 1 ? "larger" : "smaller"} than in the training photos, so this count is ` +
    `unreliable: count again with scale=${better} (CLI: --scale ${better}), or train on photos like this one.`
  );
}

/** processing.check_magnification: a tiled photo whose cells were split (a higher magnification). */
export function magnificationNote(result, whole, config) {
  const ratio = cellRatio(whole, config);
  if (whole.count < 5 || ratio === null || ratio < 1 / 1.25 || ratio > 1.25) return "";
  const mean = (scores) => scores.reduce((a, b) => a + b, 0) / scores.length;
  if (!(result.count && mean(whole.scores) > mean(result.scores) + 0.05)) return "";
  if (result.count <= 2 * whole.count) return "";
  const s = Number(whole.scale.toPrecision(3));
  result.betterScale = whole.scale;
  return (
    `Counted whole, this photo shows ${whole.count} cells of the training size against ${result.count} in ` +
    `${result.tiles} tiles: it looks taken at a higher magnification than the training photos, so this count is ` +
    `unreliable: count again with scale=${s} (CLI: --scale ${s}), or train on photos like this one.`
  );
}

// ---------------------------------------------------------------------------- the model

/** Decode an image file (Blob) to RGBA pixels at its own size, with no colour conversion.
 *
 * ``maxSide``: refuse larger photos before allocating their pixels (4 bytes each: a 48 MP
 * photo would take 192 MB, more than a phone gives a tab).
 */
export async function decodeImage(blob, { maxSide = 0 } = {}) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, {
      colorSpaceConversion: "none",
      premultiplyAlpha: "none",
      imageOrientation: "from-image",
    });
  } catch (error) {
    const name = blob.name || "this file";
    throw new Error(`${name} is not an image the browser can read (JPEG, PNG, WebP, ...)`);
  }
  const { width, height } = bitmap;
  if (maxSide && Math.max(width, height) > maxSide) {
    bitmap.close();
    throw sizeProblem(width, height, blob.name || "this photo");
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  // Transparent areas become black, as utils.images.load_image does: they then look like
  // the letterbox padding. Opaque photos are copied 1:1, no resampling.
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(bitmap, 0, 0);
  const { data } = ctx.getImageData(0, 0, width, height);
  return { pixels: data, width, height, bitmap };
}

/** Throw a clear error unless the session has the course's interface (docs/CONVENTIONS.md).
 *
 * images [N,3,S,S] -> boxes [N,A,4], scores [N,A,C]: any other .onnx (a classifier, another
 * detector) would otherwise run and print a meaningless count, or fail deep inside WASM.
 */
export function checkInterface(session, config, source = "the model") {
  const meta = (list, names) => (list && list.length ? list : names.map((name) => ({ name })));
  const inputs = meta(session.inputMetadata, session.inputNames);
  const outputs = meta(session.outputMetadata, session.outputNames);
  const dims = (m) => (Array.isArray(m.shape) ? `[${m.shape.join(",")}]` : "");
  const got = `inputs ${inputs.map((m) => m.name + dims(m)).join(", ")}; outputs ${outputs.map((m) => m.name + dims(m)).join(", ")}`;
  const fits = (shape, rank, fixed) =>
    !Array.isArray(shape) ||
    (shape.length === rank && Object.entries(fixed).every(([i, v]) => typeof shape[i] !== "number" || shape[i] === v));
  const size = config.image_size;
  const ok =
    inputs.length === 1 &&
    outputs.length === 2 &&
    fits(inputs[0].shape, 4, { 1: 3, 2: size, 3: size }) &&
    fits(outputs[0].shape, 3, { 2: 4 }) &&
    fits(outputs[1].shape, 3, { 2: config.class_names.length });
  if (!ok) {
    throw new Error(
      `${source} is not a cell counter exported by this course (${got}); expected images ` +
        `[N,3,${size},${size}] -> boxes [N,A,4], scores [N,A,${config.class_names.length}]: export it with utils.export`,
    );
  }
}

/** The model's bytes; an error that says what happened (404, offline, blocked by CORS). */
async function download(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`could not download the model ${url} (${error.message}): check the address, the network, and that its host allows this page to fetch it (CORS)`);
  }
  if (!response.ok) throw new Error(`could not download the model ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// The two ways onnxruntime-web can run the model here. "wasm": its WebAssembly build (SIMD;
// threads when the page is cross-origin isolated), in a Web Worker so the tab never freezes.
// "webgpu": its WebGPU build (the graph on the GPU; its WASM binary is the asyncify one), on
// the page's thread (onnxruntime's worker proxy is for the WASM build only).
export const BACKENDS = {
  wasm: { ortUrl: "./ort/ort.wasm.min.mjs", wasmFile: "ort-wasm-simd-threaded.wasm", provider: "wasm", proxy: true, label: "WASM (SIMD)" },
  webgpu: { ortUrl: "./ort/ort.webgpu.min.mjs", wasmFile: "ort-wasm-simd-threaded.asyncify.wasm", provider: "webgpu", proxy: false, label: "WebGPU" },
};

/** Which backend to try first: ``{name, note}``; the note says why not WebGPU, or is "".
 *
 * ``asked``: "auto" (the page's default), "webgpu" or "wasm" (``?backend=``). Auto takes WebGPU
 * only from a hardware adapter: a software one (``isFallbackAdapter``, e.g. SwiftShader) runs
 * the graph on the CPU, slower than the WASM build; "webgpu" takes any adapter (the bench
 * measures it that way).
 */
export async function chooseBackend(asked = "auto", gpu = globalThis.navigator?.gpu) {
  if (!(asked in BACKENDS) && asked !== "auto") {
    throw new Error(`backend must be auto, webgpu or wasm, got ${JSON.stringify(asked)}`);
  }
  if (asked === "wasm") return { name: "wasm", note: "" };
  const fallback = (why) => ({ name: "wasm", note: `${why}: counting with WebAssembly` });
  if (!gpu) return fallback("this browser has no WebGPU");
  let adapter = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (error) {
    return fallback(`WebGPU gave no adapter (${error.message ?? error})`);
  }
  if (!adapter) return fallback("WebGPU gave no adapter (no usable GPU, or WebGPU turned off)");
  const software = adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false;
  if (software && asked !== "webgpu") {
    return fallback("WebGPU only offers a software adapter here, slower than WebAssembly");
  }
  return { name: "webgpu", note: "" };
}

const GZIP_MAGIC = [0x1f, 0x8b];

/** The bytes of a response, gunzipped if they are gzip (a host may already have unpacked them). */
async function gunzipIfNeeded(buffer) {
  const head = new Uint8Array(buffer, 0, Math.min(2, buffer.byteLength));
  if (head[0] !== GZIP_MAGIC[0] || head[1] !== GZIP_MAGIC[1]) return buffer;
  const stream = new Blob([buffer]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).arrayBuffer();
}

/** onnxruntime-web's WASM binary: ``<file>.gz`` unpacked here when the browser can, else the file.
 *
 * Why: the binary is most of the first load (14.2 MB; 3.7 MB gzipped) and not every host
 * compresses what it serves, so the site ships it gzipped and the page unpacks it
 * (DecompressionStream: Chrome 80, Firefox 113, Safari 16.4). A site without the .gz, or a
 * browser without DecompressionStream, gets the plain file.
 */
async function downloadRuntime(url) {
  const get = async (address) => {
    const response = await fetch(address).catch((error) => {
      throw new Error(`could not download onnxruntime-web's ${address} (${error.message})`);
    });
    return response;
  };
  if (typeof DecompressionStream !== "undefined") {
    const packed = await get(`${url}.gz`);
    if (packed.ok) return gunzipIfNeeded(await packed.arrayBuffer());
  }
  const response = await get(url);
  if (!response.ok) throw new Error(`could not download onnxruntime-web's ${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

/** The inference config: from the model's ONNX metadata, else ``configUrl`` (config.json). */
async function readConfig(bytes, modelUrl, configUrl) {
  let config;
  try {
    config = configFromOnnx(bytes, modelUrl);
  } catch (error) {
    throw new Error(`${modelUrl} cannot be read as a model: ${error.message}; pick the model.onnx that utils.export wrote`);
  }
  if (config !== null) return { config, source: "ONNX metadata" };
  const sidecar = await fetch(configUrl);
  if (!sidecar.ok) {
    throw new Error(`${modelUrl} carries no inference config and ${configUrl} is missing; re-export the model`);
  }
  return { config: configFromDict(await sidecar.json(), configUrl), source: configUrl };
}

/** onnxruntime-web's build for ``backend`` (a BACKENDS entry), its WASM binary downloaded. */
async function loadRuntime(backend, threads) {
  const ortUrl = new URL(backend.ortUrl, import.meta.url);
  const ort = await import(ortUrl.href);
  ort.env.wasm.wasmPaths = new URL("./", ortUrl).href;
  // 1 thread needs no SharedArrayBuffer, so no cross-origin isolation (COOP/COEP headers).
  const isolated = typeof crossOriginIsolated !== "undefined" && crossOriginIsolated;
  ort.env.wasm.numThreads = isolated ? threads : 1; // 0: onnxruntime-web's default
  ort.env.wasm.proxy = backend.proxy; // true: the model runs in a Web Worker
  // Download the binary here rather than in onnxruntime's worker: the page can then count its
  // bytes (Resource Timing does not see a worker's downloads), and unpack a gzipped one.
  ort.env.wasm.wasmBinary = await downloadRuntime(new URL(backend.wasmFile, ort.env.wasm.wasmPaths).href);
  return ort;
}

/** A session of the model on ``ort`` with ``backend``'s execution provider. */
async function openSession(ort, backend, bytes, modelUrl) {
  try {
    return await ort.InferenceSession.create(bytes, {
      executionProviders: [backend.provider],
      graphOptimizationLevel: "all",
    });
  } catch (error) {
    throw new Error(`onnxruntime-web cannot load ${modelUrl}: ${error.message ?? error}`);
  }
}

/** The counter: an onnxruntime-web session plus the config, with ``predict`` like Predictor. */
export class Counter {
  constructor(ort, session, config, configSource) {
    this.ort = ort;
    this.session = session;
    this.config = config;
    this.configSource = configSource;
    this.inputName = session.inputNames[0];
    this.outputNames = session.outputNames;
  }

  /** Load onnxruntime-web (served locally) and the model; config from the model's metadata.
   *
   * ``backend``: "auto" (WebGPU from a hardware adapter, else WASM), "webgpu" or "wasm". When
   * the WebGPU session cannot be made, the counter falls back to WASM; ``counter.backend``
   * says which runs and ``counter.backendNote`` why not WebGPU ("" when nothing to say).
   */
  static async create(modelUrl, { backend = "auto", configUrl = "./config.json", threads = 1 } = {}) {
    const choice = await chooseBackend(backend);
    let { name, note } = choice;
    // The model and the runtime download at once (errors are taken where each is awaited).
    const modelBytes = download(modelUrl);
    const runtime = loadRuntime(BACKENDS[name], threads);
    modelBytes.catch(() => {});
    runtime.catch(() => {});
    const bytes = await modelBytes;
    const { config, source } = await readConfig(bytes, modelUrl, configUrl);
    let ort = null;
    let session = null;
    if (name === "webgpu") {
      try {
        ort = await runtime;
        session = await openSession(ort, BACKENDS.webgpu, bytes, modelUrl);
      } catch (error) {
        note = `WebGPU could not run the model (${error.message}): counting with WebAssembly`;
        name = "wasm";
      }
    }
    if (session === null) {
      ort = choice.name === "wasm" ? await runtime : await loadRuntime(BACKENDS.wasm, threads);
      session = await openSession(ort, BACKENDS.wasm, bytes, modelUrl);
    }
    checkInterface(session, config, modelUrl);
    const counter = new Counter(ort, session, config, source);
    counter.threads = ort.env.wasm.numThreads;
    counter.backend = name;
    counter.backendLabel = BACKENDS[name].label;
    counter.backendNote = note;
    return counter;
  }

  /** Raw graph outputs of every tile of a photo (RGBA pixels): {tiles, numClasses, grid, timings}.
   *
   * The photo is resized to the model's working scale and cut into tiles (processing.count_tiled);
   * an older model without a scale gets one letterboxed input, exactly as before.
   */
  async run(pixels, width, height, scale = null) {
    const t0 = performance.now();
    const grid = planTiles(width, height, this.config, scale);
    const work = resizeBilinear(pixels, width, height, grid.workWidth, grid.workHeight, 4);
    let preprocess = performance.now() - t0;
    let session = 0;
    const tiles = [];
    let numClasses = 0;
    const size = grid.size;
    for (const y of grid.ys) {
      for (const x of grid.xs) {
        const t1 = performance.now();
        const input = normalize(tileAt(work, grid, x, y), size, this.config.mean, this.config.std);
        const t2 = performance.now();
        const feeds = { [this.inputName]: new this.ort.Tensor("float32", input, [1, 3, size, size]) };
        const outputs = await this.session.run(feeds);
        session += performance.now() - t2;
        preprocess += t2 - t1;
        const scores = outputs[this.outputNames[1]];
        numClasses = scores.dims[2];
        tiles.push({ boxes: outputs[this.outputNames[0]].data, scores: scores.data });
      }
    }
    const raw = { tiles, numClasses, grid, timings: { preprocess_ms: preprocess, session_ms: session } };
    if (grid.tiles > 1 && this.config.cell_size) {
      // Also counted whole, in one input (processing.check_magnification): only ever a note.
      const t3 = performance.now();
      const fit = planTiles(width, height, this.config, size / Math.max(width, height));
      const small = resizeBilinear(pixels, width, height, fit.workWidth, fit.workHeight, 4);
      const input = normalize(tileAt(small, fit, 0, 0), size, this.config.mean, this.config.std);
      const feeds = { [this.inputName]: new this.ort.Tensor("float32", input, [1, 3, size, size]) };
      const outputs = await this.session.run(feeds);
      raw.whole = { grid: fit, tiles: [{ boxes: outputs[this.outputNames[0]].data, scores: outputs[this.outputNames[1]].data }] };
      raw.timings.session_ms += performance.now() - t3;
    }
    return raw;
  }

  /** Detections from raw outputs at ``threshold`` (default: the counting threshold). */
  detections(raw, threshold) {
    const t0 = performance.now();
    const result = mergeTiles(raw.tiles, raw.numClasses, raw.grid, this.config, threshold);
    if (raw.whole && !result.note) {
      const whole = mergeTiles(raw.whole.tiles, raw.numClasses, raw.whole.grid, this.config, threshold);
      result.note = magnificationNote(result, whole, this.config);
    }
    result.timings = { ...raw.timings, postprocess_ms: performance.now() - t0 };
    return result;
  }

  async predict(pixels, width, height, threshold, scale = null) {
    const t0 = performance.now();
    const raw = await this.run(pixels, width, height, scale);
    const result = this.detections(raw, threshold);
    result.timings.total_ms = performance.now() - t0;
    return result;
  }
}

// ---------------------------------------------------------------------------- the page

// One colour per class (Okabe-Ito, apart for most colour vision); one class: the usual yellow.
const CLASS_COLORS = ["#ffd400", "#56b4e9", "#e69f00", "#009e73", "#cc79a7", "#0072b2", "#d55e00"];

/** The colour of class ``label`` on the canvas and in the per-class line. */
export function classColor(label) {
  return CLASS_COLORS[label % CLASS_COLORS.length];
}

/** Draw the photo and a box per detection on ``canvas`` (with several classes: coloured, named). */
export function drawDetections(canvas, bitmap, result, classNames = []) {
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const line = Math.max(1, Math.round(Math.max(bitmap.width, bitmap.height) / 320));
  const several = classNames.length > 1;
  ctx.lineWidth = line;
  ctx.font = `${10 + 2 * line}px sans-serif`;
  result.boxes.forEach(([x1, y1, x2, y2], i) => {
    ctx.strokeStyle = ctx.fillStyle = several ? classColor(result.labels[i]) : CLASS_COLORS[0];
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    if (several) ctx.fillText(classNames[result.labels[i]] ?? "", x1, Math.max(10, y1 - 2));
  });
}

/** The per-class counts as a line of the page (empty for a model of one class). */
export function showClassCounts(element, result, classNames = []) {
  element.replaceChildren();
  element.hidden = classNames.length < 2;
  if (element.hidden) return;
  Object.entries(result.counts).forEach(([name, n], k) => {
    const item = document.createElement("span");
    item.className = "class-count";
    item.dataset.class = name;
    item.dataset.count = String(n);
    item.style.borderColor = classColor(k);
    item.textContent = `${name}: ${n}`;
    element.appendChild(item);
  });
}

// utils.images.MAX_SIDE: Python downsizes longer sides first (LANCZOS/BOX, not ported here),
// so this page refuses them instead of counting slightly different pixels.
export const MAX_SIDE = 4096;
const LARGE_PIXELS = 4_000_000; // above this, say that resizing takes a moment (a 12 MP photo: ~1 s)

/** A message (Error) for a photo this page should not count, or null. */
export function sizeProblem(width, height, name) {
  if (Math.max(width, height) <= MAX_SIDE) return null;
  return new Error(
    `${name} is ${width} x ${height} px; this page counts photos up to ${MAX_SIDE} px on the ` +
      `longer side (phones run out of memory on larger ones): downsize it and try again`,
  );
}

/** Let the browser paint (the status line) before a long synchronous step. */
function nextPaint() {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

/** What the page downloaded so far (Resource Timing): total and per file, in bytes. */
export function downloadedBytes() {
  const entries = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")];
  const files = entries.map((e) => ({
    name: new URL(e.name).pathname.split("/").pop() || "index.html",
    transfer: e.transferSize,
    encoded: e.encodedBodySize,
    decoded: e.decodedBodySize,
  }));
  const sum = (key) => files.reduce((total, f) => total + (f[key] || 0), 0);
  return { transfer: sum("transfer"), encoded: sum("encoded"), decoded: sum("decoded"), files };
}

/** "WASM (SIMD), 2 threads" or "WebGPU", and why not WebGPU when it was not used. */
function runsOn(counter) {
  const threads = counter.backend === "wasm"
    ? `, ${counter.threads} thread${counter.threads === 1 ? "" : "s"}${crossOriginIsolated ? "" : " (page not cross-origin isolated)"}`
    : "";
  return `${counter.backendLabel}${threads}${counter.backendNote ? ` (${counter.backendNote})` : ""}`;
}

function defaultThreads(params) {
  // 0: onnxruntime-web decides (half the cores, at most 4) on a cross-origin-isolated page;
  // more than one thread needs SharedArrayBuffer, which only such a page (COOP/COEP) has.
  if (params.has("threads")) return Math.max(1, Number(params.get("threads")) || 1);
  return 0;
}

function plural(n) {
  return `${n} cell${n === 1 ? "" : "s"}`;
}

/** Wire the page (index.html): model, examples, file input, threshold slider, count, canvas. */
export async function startApp({ modelUrl, examplesUrl = "./examples.json" } = {}) {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const body = document.body;
  const setState = (state, message) => {
    body.dataset.state = state;
    if (message !== undefined) $("status").textContent = message;
  };
  const state = { counter: null, raw: null, bitmap: null, name: null, last: null, runs: 0 };
  window.microalgae = state; // for the tests and the curious: state.last.timings

  setState("loading", "Loading the model (onnxruntime-web)...");
  // The model: ?model=..., else <meta name="model-url"> (a Hub URL or ./model.onnx).
  const meta = document.querySelector('meta[name="model-url"]');
  const url = params.get("model") || modelUrl || meta?.content || "./model.onnx";
  try {
    const backend = params.get("backend") || "auto"; // ?backend=webgpu|wasm forces one
    state.counter = await Counter.create(url, { threads: defaultThreads(params), backend });
  } catch (error) {
    setState("error", `Could not load the model: ${error.message}`);
    return state; // the message is the result: nothing else to wire up
  }
  state.load = { ms: performance.now(), ...downloadedBytes() }; // since navigation start
  const config = state.counter.config;
  const slider = $("threshold");
  const initial = params.has("threshold") ? Number(params.get("threshold")) : config.score_threshold;
  slider.min = String(config.min_score);
  slider.max = String(Math.max(0.95, initial)); // a stored 0.96 must not be clamped to 0.95
  slider.step = "any"; // a 0.01 grid would move a stored threshold like 0.325 (and the counts)
  slider.value = String(initial);
  const label = (value) => String(Number(value.toFixed(3)));
  $("threshold-value").textContent = label(Number(slider.value));
  $("model-info").textContent =
    `${config.model_name}, ${config.image_size}x${config.image_size} input, ` +
    `classes: ${config.class_names.join(", ")} (config from ${state.counter.configSource}); ` +
    `onnxruntime-web ${runsOn(state.counter)}; ` +
    `first load ${(state.load.transfer / 1e6).toFixed(1)} MB in ${(state.load.ms / 1000).toFixed(1)} s`;

  const threshold = () => Number(slider.value);
  const show = () => {
    const result = state.counter.detections(state.raw, threshold());
    result.timings.total_ms = state.raw.timings.preprocess_ms + state.raw.timings.session_ms + result.timings.postprocess_ms;
    state.last = result;
    drawDetections($("canvas"), state.bitmap, result, config.class_names);
    showClassCounts($("class-counts"), result, config.class_names);
    const count = $("count");
    count.textContent = String(result.count);
    count.dataset.image = state.name;
    count.dataset.threshold = String(threshold());
    count.dataset.run = String(++state.runs);
    const t = result.timings;
    $("timing").textContent =
      `model ${t.session_ms.toFixed(0)} ms on ${result.tiles} tile${result.tiles === 1 ? "" : "s"}, ` +
      `resize+normalise ${t.preprocess_ms.toFixed(0)} ms, NMS ${t.postprocess_ms.toFixed(1)} ms (all in this browser)`;
    const note = result.note ? ` ${result.note}` : "";
    const several = config.class_names.length > 1;
    const byClass = several ? ` (${Object.entries(result.counts).map(([k, n]) => `${k} ${n}`).join(", ")})` : "";
    setState("done", `${plural(result.count)}${byClass} found in ${state.name} at threshold ${label(threshold())}.${note}`);
  };

  const count = async (blob, name) => {
    setState("running", `Counting ${name}...`);
    $("count").textContent = "…";
    try {
      await nextPaint(); // show "Counting..." before the synchronous work below
      const t0 = performance.now();
      const image = await decodeImage(blob, { maxSide: MAX_SIDE });
      if (image.width * image.height > LARGE_PIXELS) {
        const mp = ((image.width * image.height) / 1e6).toFixed(1);
        setState("running", `Counting ${name}: a large photo (${image.width} x ${image.height}, ${mp} MP), resizing it takes a moment...`);
        await nextPaint();
      }
      const t1 = performance.now();
      state.raw = await state.counter.run(image.pixels, image.width, image.height);
      state.raw.timings.decode_ms = t1 - t0;
      state.bitmap = image.bitmap;
      state.name = name;
      show();
      state.last.timings.pipeline_ms = performance.now() - t0; // decode + resize + model + NMS + draw
    } catch (error) {
      state.raw = null; // the slider must not bring back the previous photo's result
      const canvas = $("canvas");
      canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
      $("count").textContent = "–";
      $("count").dataset.image = name;
      $("class-counts").replaceChildren();
      setState("error", `Could not count ${name}: ${error.message}`);
    }
  };

  slider.addEventListener("input", () => {
    $("threshold-value").textContent = label(threshold());
    if (state.raw) show(); // only the threshold changed: no need to run the model again
  });
  $("file").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) count(file, file.name);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => event.preventDefault());
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) count(file, file.name);
  });

  try {
    const response = await fetch(examplesUrl);
    const examples = response.ok ? await response.json() : [];
    for (const url of examples) {
      const name = url.split("/").pop();
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = name;
      button.dataset.example = name;
      button.addEventListener("click", async () => {
        const blob = await (await fetch(url)).blob();
        count(blob, name);
      });
      $("examples").appendChild(button);
    }
  } catch {
    // examples are a convenience; the file input always works
  }
  setState("ready", "Model ready. Pick a photo or an example: it never leaves this computer.");
  return state;
}
