// report.js - the Node http (llhttp 9) side of the differential framing
// fuzzer (fuzz/diff/README.md). Answers every request Node's default,
// strict parser accepts with a report of what it parsed; see
// fuzz/diff/vigil_report.c for the format, shared byte for byte.
//
//   node report.js --port N   (127.0.0.1; 0 picks one; prints "listening P")
//
// The whole body is read before answering. Node's own rejections come from
// its 'clientError' default, reproduced here with two changes: a message
// cut short by the client's FIN (HPE_INVALID_EOF_STATE) closes without an
// answer, as Go and Vigil do, bytes after a request that closes the
// connection are ignored (below), and the answer carries Content-Length: 0 and
// X-Error (llhttp's code) for the reader of a finding. CONNECT and Upgrade
// requests (which Node hands to 'connect' / 'upgrade', not 'request') are
// reported with "upgrade":true and the connection closed: tunnels are not
// compared.
'use strict';
const http = require('http');
const crypto = require('crypto');

function jsonStr(s) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) {
      out += '\\u' + c.toString(16).padStart(4, '0');
    } else {
      out += s[i];
    }
  }
  return out + '"';
}

function report(req, len, hex, extra) {
  return `{"server":"node","method":${jsonStr(req.method)},"target":${jsonStr(req.url)},` +
    `"version":"${req.httpVersion}","body_len":${len},"sha256":"${hex}"${extra || ''}}`;
}

let port = 0;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--port' && i + 1 < process.argv.length) port = Number(process.argv[++i]);
  else { console.error('usage: node report.js [--port N]'); process.exit(2); }
}

const server = http.createServer({
  maxHeaderSize: 1 << 20,
  keepAliveTimeout: 60000,
  headersTimeout: 20000,
  requestTimeout: 30000,
}, (req, res) => {
  const h = crypto.createHash('sha256');
  let len = 0;
  req.on('data', (d) => { h.update(d); len += d.length; });
  req.on('end', () => {
    const body = report(req, len, h.digest('hex'));
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'X-Report': body,
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  req.on('error', () => {});
});

const STATUS = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Payload Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};
server.on('clientError', (err, socket) => {
  const code = err.code || 'ERR';
  // Bytes after a request that closes the connection (Connection: close,
  // HTTP/1.0): llhttp 9 calls them an error; RFC 9112 9.6 says the server
  // does not read them. Let the pending answer go out, then close, as Go
  // does.
  if (code === 'HPE_CLOSED_CONNECTION') {
    if (!socket._httpMessage) socket.destroy();
    return;
  }
  if (code === 'HPE_INVALID_EOF_STATE' || code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = STATUS[code] || '400 Bad Request';
  // Node answers the error at once, before the answers of the requests it
  // parsed earlier in the same read (their handlers have not run yet), and
  // so loses them. Go and Vigil answer a pipeline in order: answer those
  // first, then the error.
  const reject = () => {
    const m = socket._httpMessage;
    // Wait only for answers to requests that were read whole; an error in
    // the body of the request being answered is that request's rejection.
    if (m && !m.writableFinished && m.req && m.req.complete) {
      m.once('finish', () => setImmediate(reject));
      m.once('close', () => setImmediate(reject));
      return;
    }
    if (socket.destroyed || !socket.writable) return;
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\nX-Error: ${code}\r\n\r\n`);
  };
  reject();
});

function tunnel(req, socket) {
  const body = report(req, -1, '', ',"upgrade":true');
  socket.on('error', () => {});
  // Node emits 'connect'/'upgrade' while the answers to requests pipelined
  // before this one are still pending (their handlers run on 'end', a tick
  // later): ending the socket now would lose them. Go and Vigil answer a
  // pipeline in order, so answer after the socket's pending responses (each
  // attaches itself as socket._httpMessage when the previous one finishes).
  let done = false;
  const send = () => {
    if (done) return;
    const m = socket._httpMessage;
    if (m && !m.writableFinished) {
      const again = () => setImmediate(send);
      m.once('finish', again);
      m.once('close', again);
      return;
    }
    done = true;
    if (socket.destroyed || !socket.writable) return;
    socket.end(`HTTP/1.1 200 OK\r\nConnection: close\r\nX-Report: ${body}\r\n` +
               `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  };
  send();
}
server.on('connect', tunnel);
server.on('upgrade', tunnel);

server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
