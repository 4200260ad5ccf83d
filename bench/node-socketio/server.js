// The Node.js Socket.IO baseline for `switchboard-loadgen fanout`: every connection joins one
// room, and each "message" event is forwarded to everyone else in it. Nothing else: no
// authentication, no storage, WebSocket transport only.
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const io = new Server(port, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
});
io.on("connection", (socket) => {
  socket.join("room");
  socket.on("message", (data) => socket.to("room").emit("message", data));
});
console.log(`listening on ${port}`);
