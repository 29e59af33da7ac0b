// A minimal ws:// WebSocket (RFC 6455 client, text frames) over node:net, for Node
// versions without a global WebSocket (Debian 12 ships Node 18). Test-only: it shows
// the client's `WebSocket` injection and keeps the e2e scripts running there.
import crypto from "node:crypto";
import net from "node:net";

export class MiniWebSocket {
  constructor(url, protocols) {
    const target = new URL(url);
    if (target.protocol !== "ws:") throw new SyntaxError(`only ws:// URLs, got ${url}`);
    this.url = url;
    this.readyState = 0;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    this._buffer = Buffer.alloc(0);
    this._fragments = [];
    this._handshaken = false;
    this._closeFrame = null;
    const key = crypto.randomBytes(16).toString("base64");
    const lines = [
      `GET ${target.pathname}${target.search} HTTP/1.1`,
      `Host: ${target.host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
    ];
    if (protocols) lines.push(`Sec-WebSocket-Protocol: ${[].concat(protocols).join(", ")}`);
    this._socket = net.connect(Number(target.port || 80), target.hostname, () => {
      this._socket.write(lines.join("\r\n") + "\r\n\r\n");
    });
    this._socket.on("data", (chunk) => this._onData(chunk));
    this._socket.on("error", () => this.onerror?.({}));
    this._socket.on("close", () => this._finish());
  }

  send(text) {
    if (this.readyState !== 1) throw new Error("WebSocket is not open");
    this._write(0x1, Buffer.from(String(text)));
  }

  close(code = 1000, reason = "") {
    if (this.readyState >= 2) return;
    if (this.readyState === 0) {
      this.readyState = 2;
      this._socket.destroy();
      return;
    }
    this.readyState = 2;
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    this._write(0x8, Buffer.concat([payload, Buffer.from(reason)]));
    setTimeout(() => this._socket.destroy(), 1000).unref();
  }

  _onData(chunk) {
    this._buffer = Buffer.concat([this._buffer, chunk]);
    if (!this._handshaken) {
      const end = this._buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this._buffer.subarray(0, end).toString("latin1");
      this._buffer = this._buffer.subarray(end + 4);
      if (!/^HTTP\/1\.1 101 /.test(head)) {
        this._socket.destroy(); // refused handshake: close 1006, as browsers report it
        return;
      }
      this._handshaken = true;
      this.readyState = 1;
      this.onopen?.({});
    }
    for (;;) {
      const buffer = this._buffer;
      if (buffer.length < 2) return;
      let length = buffer[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      const masked = Boolean(buffer[1] & 0x80);
      const mask = masked ? buffer.subarray(offset, offset + 4) : null;
      if (masked) offset += 4;
      if (buffer.length < offset + length) return;
      const payload = Buffer.from(buffer.subarray(offset, offset + length));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
      this._buffer = buffer.subarray(offset + length);
      this._onFrame(Boolean(buffer[0] & 0x80), buffer[0] & 0x0f, payload);
    }
  }

  _onFrame(fin, opcode, payload) {
    if (opcode === 0x8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      this._closeFrame = { code, reason: payload.subarray(2).toString("utf8") };
      if (this.readyState === 1) {
        this.readyState = 2;
        this._write(0x8, payload.subarray(0, 2));
      }
      this._socket.end();
      return;
    }
    if (opcode === 0x9) return this._write(0xa, payload);
    if (opcode === 0xa) return;
    this._fragments.push(payload);
    if (opcode !== 0x0) this._opcode = opcode;
    if (!fin) return;
    const data = Buffer.concat(this._fragments);
    this._fragments = [];
    if (this._opcode === 0x1) this.onmessage?.({ data: data.toString("utf8") });
    else this.onmessage?.({ data });
  }

  _write(opcode, payload) {
    const mask = crypto.randomBytes(4);
    let header;
    if (payload.length < 126) {
      header = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
    } else if (payload.length < 65536) {
      header = Buffer.alloc(4);
      header[0] = 0x80 | opcode;
      header[1] = 0x80 | 126;
      header.writeUInt16BE(payload.length, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = 0x80 | opcode;
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(payload.length), 2);
    }
    const masked = Buffer.from(payload);
    for (let i = 0; i < masked.length; i++) masked[i] ^= mask[i % 4];
    this._socket.write(Buffer.concat([header, mask, masked]));
  }

  _finish() {
    if (this.readyState === 3) return;
    this.readyState = 3;
    const { code, reason } = this._closeFrame ?? { code: 1006, reason: "" };
    this.onclose?.({ code, reason, wasClean: this._closeFrame !== null });
  }
}
