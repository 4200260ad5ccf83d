// The Node.js Socket.IO baseline for `switchboard-loadgen fanout` and `chat`: every connection
// joins one room (its `room` query parameter, or "room"), and each "message" event is forwarded
// to everyone else in it. Nothing else: no authentication, no storage, WebSocket transport only.
const { createServer } = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const http = createServer();
const io = new Server(http, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
});
io.on("connection", (socket) => {
  const room = String(socket.handshake.query.room || "room");
  socket.join(room);
  socket.on("message", (data) => socket.to(room).emit("message", data));
});
// Loopback only, as the load generator picked the port there: a wildcard address would also
// collide with connections other scenarios left in TIME_WAIT on other loopback addresses.
http.listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));
