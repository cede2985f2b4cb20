// A reverse proxy on loopback that adds `Authorization: Bearer $TOKEN` to every request
// it passes to TARGET, for a client that cannot send headers of its own (the official
// conformance suite takes only a URL). Like any reverse proxy it rewrites a Host (and an
// Origin) naming itself to the target's, and passes every other Host and Origin as it
// came, so the target's DNS-rebinding checks still see a foreign one. Responses,
// server-sent event streams included, are piped back as they arrive.
//
// usage: TOKEN=... node bearer_proxy.mjs http://127.0.0.1:PORT
// prints `listening PORT` once ready.

import http from "node:http";

const target = new URL(process.argv[2]);
const token = process.env.TOKEN;
if (!token) {
  console.error("bearer_proxy: TOKEN is not set");
  process.exit(2);
}

const server = http.createServer((request, response) => {
  const own = `${request.socket.localAddress === "::1" ? "[::1]" : request.socket.localAddress}:${server.address().port}`;
  const ownNames = new Set([own, `localhost:${server.address().port}`]);
  const headers = { ...request.headers, authorization: `Bearer ${token}` };
  if (ownNames.has(headers.host)) headers.host = target.host;
  if (headers.origin && ownNames.has(headers.origin.replace(/^https?:\/\//, ""))) {
    headers.origin = `${target.protocol}//${target.host}`;
  }
  const upstream = http.request(
    {
      host: target.hostname,
      port: target.port,
      method: request.method,
      path: request.url,
      headers,
    },
    (answer) => {
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    },
  );
  upstream.on("error", (error) => {
    if (!response.headersSent) response.writeHead(502);
    response.end(String(error));
  });
  request.pipe(upstream);
  response.on("close", () => upstream.destroy());
});

server.listen(0, "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
