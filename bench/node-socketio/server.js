// The Node.js Socket.IO baseline for `switchboard-loadgen fanout` and `chat`: every connection
// joins one room (its `room` query parameter, or "room"), and each "message" event is forwarded
// to everyone else in it. Nothing else: no authentication, no storage, WebSocket transport only.
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const io = new Server(port, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
});
io.on("connection", (socket) => {
  const room = String(socket.handshake.query.room || "room");
  socket.join(room);
  socket.on("message", (data) => socket.to(room).emit("message", data));
});
console.log(`listening on ${port}`);
