// fledge local's runtime client for nodejs functions: it takes each event from the Runtime
// API (AWS_LAMBDA_RUNTIME_API), calls the handler named by _HANDLER (`file.export`, the file
// found in LAMBDA_TASK_ROOT as .js, .mjs or .cjs) as Lambda's Node.js runtime does (async or
// with a callback), and posts the answer or the error in Lambda's shape. console output gets
// Lambda's `time\trequest id\tLEVEL\t` prefix. A handler wrapped in
// `awslambda.streamifyResponse` writes its answer to a response stream, posted as Lambda's
// runtimes post one (chunked, `Lambda-Runtime-Function-Response-Mode: streaming`, an error
// midway in the error trailers); `awslambda.HttpResponseStream.from` writes the metadata
// prelude of an HTTP response first.

import { existsSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import { format } from "node:util";

const [host, port] = (process.env.AWS_LAMBDA_RUNTIME_API || "").split(":");
// One kept-alive connection: node:http costs a fraction of what fetch does per request.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const options = { host, port, method, agent, headers, path: `/2018-06-01/runtime${path}` };
    const req = http.request(options, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}
const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
const handlerName = process.env._HANDLER || "";
let requestId = "undefined";

// With LoggingConfig.LogFormat JSON, each line is a JSON record, and lines below
// AWS_LAMBDA_LOG_LEVEL are left out, as Lambda's Node.js runtime does.
const json = process.env.AWS_LAMBDA_LOG_FORMAT === "JSON";
const levels = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
const least = json ? Math.max(0, levels.indexOf(process.env.AWS_LAMBDA_LOG_LEVEL || "INFO")) : 0;
for (const [method, level] of [
  ["log", "INFO"],
  ["info", "INFO"],
  ["warn", "WARN"],
  ["error", "ERROR"],
  ["debug", "DEBUG"],
  ["trace", "TRACE"],
]) {
  if (levels.indexOf(level) < least) {
    console[method] = () => {};
    continue;
  }
  console[method] = (...args) => {
    const time = new Date().toISOString();
    if (json) {
      const record = { timestamp: time, level, requestId, message: format(...args) };
      process.stdout.write(`${JSON.stringify(record)}\n`);
      return;
    }
    const text = format(...args).replace(/\n/g, "\r");
    process.stdout.write(`${time}\t${requestId}\t${level}\t${text}\n`);
  };
}

function describe(error, fallbackType) {
  if (error instanceof Error) {
    return {
      errorType: error.name || fallbackType,
      errorMessage: error.message,
      trace: (error.stack || "").split("\n"),
    };
  }
  return { errorType: typeof error, errorMessage: String(error), trace: [] };
}

async function post(path, body, errorType) {
  const text = Buffer.from(JSON.stringify(body));
  const headers = { "content-type": "application/json", "content-length": text.length };
  if (errorType) headers["lambda-runtime-function-error-type"] = errorType;
  await request("POST", path, text, headers);
}

// What Lambda's Node.js runtime gives handlers for response streaming.
const STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
globalThis.awslambda = {
  streamifyResponse(handler) {
    handler[STREAMING] = "response";
    return handler;
  },
  HttpResponseStream: class HttpResponseStream {
    static from(stream, prelude) {
      stream.setContentType("application/vnd.awslambda.http-integration-response");
      stream.write(JSON.stringify(prelude));
      stream.write(Buffer.alloc(8));
      return stream;
    }
  },
};

// A response stream for one invocation: a Writable whose bytes go out as the chunks of the
// POST of its response. `finish(error)` ends it, with the error trailers when it failed;
// it resolves once the Runtime API has answered.
function responseStream(id) {
  let answered;
  const done = new Promise((resolve, reject) => {
    answered = { resolve, reject };
  });
  const req = http.request(
    {
      host,
      port,
      agent,
      method: "POST",
      path: `/2018-06-01/runtime/invocation/${id}/response`,
      headers: {
        "content-type": "application/octet-stream",
        "lambda-runtime-function-response-mode": "streaming",
        "transfer-encoding": "chunked",
        trailer: "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
      },
    },
    (res) => {
      res.resume();
      res.on("end", answered.resolve);
      res.on("error", answered.reject);
    },
  );
  req.on("error", answered.reject);
  let failure = null;
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      req.write(chunk, callback);
    },
    final(callback) {
      if (failure) {
        req.addTrailers({
          "Lambda-Runtime-Function-Error-Type": failure.errorType,
          "Lambda-Runtime-Function-Error-Body": Buffer.from(JSON.stringify(failure)).toString("base64"),
        });
      }
      req.end(callback);
    },
  });
  stream.setContentType = (type) => req.setHeader("content-type", type);
  stream.finish = (error) => {
    if (error) failure = describe(error, "Error");
    if (!stream.writableEnded) stream.end();
    return done;
  };
  return stream;
}

async function initError(errorType, errorMessage) {
  const error = { errorType, errorMessage, trace: [] };
  console.error(`${errorType}: ${errorMessage}`);
  await post("/init/error", error, errorType);
  process.exit(1);
}

async function loadHandler() {
  const cut = handlerName.lastIndexOf("/") + 1;
  const dot = handlerName.indexOf(".", cut);
  if (dot < 0) {
    return initError("Runtime.MalformedHandlerName", `Bad handler ${handlerName}`);
  }
  const file = handlerName.slice(0, dot);
  const path = handlerName.slice(dot + 1).split(".");
  const found = [".js", ".mjs", ".cjs"].map((ext) => join(root, file + ext)).find(existsSync);
  if (!found) {
    return initError(
      "Runtime.ImportModuleError",
      `Error: Cannot find module '${file}'\nRequire stack:\n- ${root}`,
    );
  }
  let module;
  try {
    module = await import(pathToFileURL(found).href);
  } catch (error) {
    const { errorType, errorMessage } = describe(error, "Error");
    const kind = error instanceof SyntaxError ? "Runtime.UserCodeSyntaxError" : "Runtime.ImportModuleError";
    return initError(kind, `${errorType}: ${errorMessage}`);
  }
  let handler = path.reduce((at, key) => (at == null ? undefined : at[key]), module);
  if (typeof handler !== "function" && module.default) {
    handler = path.reduce((at, key) => (at == null ? undefined : at[key]), module.default);
  }
  if (typeof handler !== "function") {
    return initError("Runtime.HandlerNotFound", `${handlerName} is undefined or not exported`);
  }
  return handler;
}

function call(handler, event, context) {
  return new Promise((resolve, reject) => {
    const callback = (error, result) => (error != null ? reject(error) : resolve(result));
    try {
      const returned = handler(event, context, callback);
      if (returned && typeof returned.then === "function") {
        returned.then(resolve, reject);
      } else if (handler.length < 3) {
        resolve(returned);
      }
    } catch (error) {
      reject(error);
    }
  });
}

let inFlight = null;
for (const signal of ["uncaughtException", "unhandledRejection"]) {
  process.on(signal, async (error) => {
    const type = signal === "unhandledRejection" ? "Runtime.UnhandledPromiseRejection" : describe(error, "Error").errorType;
    console.error(`${type}: ${describe(error, "Error").errorMessage}`);
    if (inFlight) await post(`/invocation/${inFlight}/error`, { ...describe(error, "Error"), errorType: type }, type);
    process.exit(129);
  });
}

const handler = await loadHandler();
for (;;) {
  const next = await request("GET", "/invocation/next");
  const event = JSON.parse(next.body.toString("utf8") || "null");
  const h = next.headers;
  requestId = h["lambda-runtime-aws-request-id"];
  inFlight = requestId;
  const deadline = Number(h["lambda-runtime-deadline-ms"]);
  const trace = h["lambda-runtime-trace-id"];
  if (trace) process.env._X_AMZN_TRACE_ID = trace;
  else delete process.env._X_AMZN_TRACE_ID;
  const clientContext = h["lambda-runtime-client-context"];
  const identity = h["lambda-runtime-cognito-identity"];
  const context = {
    awsRequestId: requestId,
    invokedFunctionArn: h["lambda-runtime-invoked-function-arn"],
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    clientContext: clientContext ? JSON.parse(clientContext) : undefined,
    identity: identity ? JSON.parse(identity) : undefined,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  if (handler[STREAMING] === "response") {
    const stream = responseStream(requestId);
    let failed = null;
    try {
      await handler(event, stream, context);
    } catch (error) {
      failed = error;
      console.error(`Invoke Error \t${JSON.stringify(describe(error, "Error"))}`);
    }
    await stream.finish(failed);
    inFlight = null;
    continue;
  }
  try {
    const result = await call(handler, event, context);
    await post(`/invocation/${requestId}/response`, result === undefined ? null : result);
  } catch (error) {
    const described = describe(error, "Error");
    console.error(`Invoke Error \t${JSON.stringify(described)}`);
    await post(`/invocation/${requestId}/error`, described, described.errorType);
  }
  inFlight = null;
}
