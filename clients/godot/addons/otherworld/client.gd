# otherworld client node for Godot 3.2: one WebSocket connection to an otherworld server.
#
# Add it to the scene tree (it polls the socket in _process), or call poll() yourself every frame.
# The wire codec is protocol.gd; this file only deals with the socket, the session state, the local
# entity table and the signals.
#
#   var ow = preload("res://addons/otherworld/client.gd").new()
#   add_child(ow)
#   ow.connect("welcome", self, "_on_welcome")          # ... and the other signals
#   ow.connect_to_server("ws://127.0.0.1:8080/ws")
#   ow.hello()                                            # queued until the socket is open
#
# Requests return their request id (> 0), echoed by the reply and by ERROR; or a negative
# Proto.E_* code when the arguments cannot be encoded (E_INVAL, E_BAD_NAME, E_TEXT_TOO_LONG) or the
# call is not possible now (E_STATE). Messages are queued and packed into binary WebSocket
# messages of at most `max_message` bytes (WELCOME) at the end of each poll().
#
# Actions: send_action() numbers them from SESSION's last_seq + 1 and keeps each one until DURABLE
# confirms it. After a reconnect, RESUME and JOIN, every action not yet confirmed is re-sent with
# its original sequence number (the server answers replayed = 1 for those it already applied).
#
# Entities: SNAPSHOTs are applied to `entities` (id -> entity Dictionary, see protocol.gd) chunk by
# chunk; a full state (base 0) drops every entity it does not list once its last chunk arrived;
# the client ACKs each complete snapshot. entity_updated / entity_removed report the changes.
extends Node

const Proto = preload("protocol.gd")

# The WebSocket is open (messages queued before are being sent now).
signal connected()
# The WebSocket could not be opened, or closed. `clean` is the engine's was_clean_close.
signal disconnected(clean)
signal welcome(msg)                 # WELCOME Dictionary (version, tick_hz, pose_hz, ...)
signal ok(req)                      # OK: reply to REGISTER, LEAVE, LOGOUT, CHAT
signal session(msg)                 # SESSION (token, account, avatar, role, last_seq, resumed)
signal joined(world)                # JOINED: the world description (types, recipes, keys)
signal applied(msg)                 # APPLIED (req, seq, code, entity, count, frame, replayed)
signal durable(msg)                 # DURABLE (frame, status, seqs)
signal entity_updated(entity)       # an entity entered or changed in `entities`
signal entity_removed(id)           # an entity left `entities`
signal snapshot_applied(id, base, frame)  # the last chunk of a snapshot was applied and ACKed
signal poses(tick, entries)         # POSES: Array of {"avatar": id, "pose": pose Dictionary}
signal event(msg)                   # EVENT (kind, from, text)
signal pong(msg)                    # PONG, with "rtt_us" added
# ERROR from the server, or a local failure with req 0 (E_PROTO for malformed server data,
# E_CONNECTION when the socket fails). For a refused action, msg has "seq" as well.
signal error(msg)
signal bye(reason, text)            # SERVER_BYE; the server closes the connection after it

export var client_name: String = "otherworld-godot"
# Inbound buffer of the WebSocket in KiB. Godot 3's default is 64 KiB for everything queued; the
# server keeps each message <= 60 KiB, but several may be waiting between two polls.
export var in_buffer_kb: int = 1024
export var out_buffer_kb: int = 256
# Print local errors.
export var verbose: bool = false

enum State { DISCONNECTED, CONNECTING, OPEN }

var state = State.DISCONNECTED
var max_message: int = Proto.CLIENT_MAX_MESSAGE
var welcome_info: Dictionary = {}
var session_info: Dictionary = {}   # the latest SESSION (token included)
var world: Dictionary = {}          # the latest JOINED
var in_world: bool = false
var entities: Dictionary = {}       # id -> entity Dictionary
var avatar_poses: Dictionary = {}   # avatar id -> latest pose Dictionary from POSES
var last_seq: int = 0               # the last sequence number given to an action
var rtt_us: int = -1                # latest PING round trip
var server_offset_us: int = 0       # server_time_us - local OS.get_ticks_usec(), estimated
var stats = {"ws_in": 0, "ws_out": 0, "bytes_in": 0, "bytes_out": 0, "msgs_in": 0, "msgs_out": 0}

var _ws: WebSocketClient = null
var _dead_ws: WebSocketClient = null  # closed socket, released at the next poll (not mid-signal)
var _inbox: Array = []              # [PoolByteArray, was_string] received, not yet dispatched
var _in_close: bool = false         # inside connection_closed: the socket is gone
var _out: Array = []                # encoded messages waiting for the socket (PoolByteArray)
var _pose: PoolByteArray = PoolByteArray()  # latest pose, sent with the next flush
var _req: int = 0
var _conn_gen: int = 0              # incremented per connection
var _unconfirmed: Dictionary = {}   # seq -> {"req", "action", "gen"}: not yet durable
var _req_seq: Dictionary = {}       # req of an action -> seq
var _snap_id: int = -1              # snapshot being received (-1: none)
var _snap_base: int = 0
var _snap_seen: Dictionary = {}     # ids listed by the full state being received
var _resumed: bool = false
var _dec: Dictionary = Proto.new_decode_state()  # this connection's version, region size, POSES slots


func _ready() -> void:
	# Keep the connection alive while the game is paused.
	pause_mode = Node.PAUSE_MODE_PROCESS
	set_process(true)


func _process(_delta: float) -> void:
	poll()


func _exit_tree() -> void:
	if _ws != null:
		_ws.disconnect_from_host(1000, "bye")


# ---- connection ----------------------------------------------------------------------------

# Starts connecting to url ("ws://host:port/ws"). Returns OK or an engine Error code.
func connect_to_server(url: String, use_subprotocol: bool = true) -> int:
	if state != State.DISCONNECTED:
		return ERR_ALREADY_IN_USE
	_ws = WebSocketClient.new()
	_ws.set_buffers(in_buffer_kb, 4096, out_buffer_kb, 4096)
	_ws.connect("connection_established", self, "_on_ws_open")
	_ws.connect("connection_error", self, "_on_ws_error")
	_ws.connect("connection_closed", self, "_on_ws_closed")
	_ws.connect("server_close_request", self, "_on_ws_close_request")
	_ws.connect("data_received", self, "_collect")
	var protocols = PoolStringArray([Proto.SUBPROTOCOL]) if use_subprotocol else PoolStringArray()
	var err = _ws.connect_to_url(url, protocols, false)
	if err != OK:
		_ws = null
		return err
	state = State.CONNECTING
	_conn_gen += 1
	_out.clear()
	_inbox.clear()
	_pose = PoolByteArray()
	_dec = Proto.new_decode_state()
	max_message = Proto.CLIENT_MAX_MESSAGE
	in_world = false
	_resumed = false
	_snap_id = -1
	_snap_seen.clear()
	return OK


# Sends BYE (reason NORMAL by default), flushes and closes the WebSocket.
func close(reason: int = Proto.BYE_NORMAL, text: String = "") -> void:
	if _ws == null or _in_close:
		return
	if state == State.OPEN:
		_queue(Proto.encode_bye(reason, text))
		_flush()
		_ws.poll()
	_ws.disconnect_from_host(1000, "bye")


# Closes the socket at once: no BYE, and whatever is still queued is dropped (as when the network
# fails). Actions not yet confirmed durable are re-sent after the next RESUME and JOIN.
func drop_connection() -> void:
	if _ws == null or _in_close:
		return
	_out.clear()
	_ws.disconnect_from_host(1000, "dropped")


func is_open() -> bool:
	return state == State.OPEN


# Pumps the socket: reads and dispatches what arrived, then writes what is queued.
func poll() -> void:
	_dead_ws = null
	if _ws == null:
		return
	_ws.poll()
	if _ws != null and state == State.OPEN:
		_collect()
		_dispatch_inbox()
		_flush()


# Moves every WebSocket message waiting in the peer to the inbox. Runs from data_received too:
# Godot 3.2's peer reports no packets once the connection is closed, so messages that arrive
# together with the close (OK and SERVER_BYE after LOGOUT) must be taken while it is still open.
func _collect() -> void:
	if _ws == null:
		return
	var peer = _ws.get_peer(1)
	while peer.get_available_packet_count() > 0:
		var pkt = peer.get_packet()
		_inbox.append([pkt, peer.was_string_packet()])


func _dispatch_inbox() -> void:
	var ws = _ws
	while not _inbox.empty() and _ws == ws:
		var item = _inbox.pop_front()
		if item[1]:
			_local_error(Proto.E_PROTO, "the server sent a text WebSocket message")
			close(Proto.BYE_PROTOCOL, "text message")
			_inbox.clear()
			return
		_on_ws_message(item[0])


# ---- requests ------------------------------------------------------------------------------

func hello(version: int = Proto.VERSION) -> int:
	var req = _next_req()
	return _send(Proto.encode_hello(req, client_name, version), req, Proto.E_INVAL)


func register(account: String, password: String) -> int:
	var req = _next_req()
	return _send(Proto.encode_register(req, account, password), req, Proto.E_BAD_NAME)


func login(account: String, password: String) -> int:
	var req = _next_req()
	return _send(Proto.encode_login(req, account, password), req, Proto.E_BAD_NAME)


# RESUME with the token of an earlier SESSION (session_info.token by default).
func resume(token: PoolByteArray = PoolByteArray()) -> int:
	if token.size() == 0 and session_info.has("token"):
		token = session_info.token
	var req = _next_req()
	return _send(Proto.encode_resume(req, token), req, Proto.E_INVAL)


func join() -> int:
	var req = _next_req()
	return _send(Proto.encode_join(req), req, Proto.E_INVAL)


func leave() -> int:
	var req = _next_req()
	in_world = false
	return _send(Proto.encode_leave(req), req, Proto.E_INVAL)


func logout() -> int:
	var req = _next_req()
	return _send(Proto.encode_logout(req), req, Proto.E_INVAL)


func chat(text: String) -> int:
	var req = _next_req()
	return _send(Proto.encode_chat(req, text), req, Proto.E_TEXT_TOO_LONG)


# PING; client_time defaults to the local clock (µs), which PONG handling uses for rtt_us.
func ping(client_time: int = -1) -> int:
	if client_time < 0:
		client_time = OS.get_ticks_usec()
	var req = _next_req()
	return _send(Proto.encode_ping(req, client_time), req, Proto.E_INVAL)


# ACTION. `action` is a Dictionary (see Proto.encode_action): action, kind, target, dest, count,
# pos, rot, scale. Gets the session's next sequence number unless `seq` is given (> 0: re-send of a
# known number). Returns {"req": id, "seq": n} or {"req": negative code, "seq": 0}.
func send_action(action: Dictionary, seq: int = 0) -> Dictionary:
	if session_info.empty():
		return {"req": Proto.E_STATE, "seq": 0}
	if seq <= 0:
		seq = last_seq + 1
	var req = _next_req()
	var msg = Proto.encode_action(req, seq, action)
	if msg.size() == 0:
		return {"req": Proto.E_INVAL, "seq": 0}
	if seq > last_seq:
		last_seq = seq
	_unconfirmed[seq] = {"req": req, "action": action.duplicate(), "gen": _conn_gen}
	_req_seq[req] = seq
	if in_world:
		_queue(msg)
	else:
		# Sent with the next JOINED.
		_unconfirmed[seq].gen = -1
	return {"req": req, "seq": seq}


func harvest(target: int) -> Dictionary:
	return send_action({"action": Proto.ACT_HARVEST, "target": target})


func craft(recipe: int) -> Dictionary:
	return send_action({"action": Proto.ACT_CRAFT, "kind": recipe})


func build(structure_type: int, pos: Vector3, rot: Quat = Quat(0, 0, 0, 1),
		scale: Vector3 = Vector3(1, 1, 1)) -> Dictionary:
	return send_action({"action": Proto.ACT_BUILD, "kind": structure_type, "pos": pos, "rot": rot,
		"scale": scale})


func move(target: int, pos: Vector3, rot: Quat = Quat(0, 0, 0, 1)) -> Dictionary:
	return send_action({"action": Proto.ACT_MOVE, "target": target, "pos": pos, "rot": rot})


func transfer(stack: int, dest: int, count: int) -> Dictionary:
	return send_action({"action": Proto.ACT_TRANSFER, "target": stack, "dest": dest,
		"count": count})


func interact(target: int) -> Dictionary:
	return send_action({"action": Proto.ACT_INTERACT, "target": target})


func destroy(target: int) -> Dictionary:
	return send_action({"action": Proto.ACT_DESTROY, "target": target})


# Actions issued and not yet confirmed durable.
func unconfirmed_count() -> int:
	return _unconfirmed.size()


# POSE (latest value wins: replaces a pose not yet sent; sent while in the world). Arguments as
# Proto.make_pose: root position (m) and rotation, then optional bones [Vector3 relative to the
# root, Quat] for the head, left hand, right hand, and an Array of trackers.
# Returns OK, or ERR_INVALID_PARAMETER when the pose cannot be encoded.
func send_pose(root_pos: Vector3, root_rot: Quat, head = null, left_hand = null,
		right_hand = null, trackers: Array = []) -> int:
	return send_pose_raw(Proto.make_pose(root_pos, root_rot, head, left_hand, right_hand, trackers))


func send_pose_raw(pose: Dictionary) -> int:
	var msg = Proto.encode_pose(pose)
	if msg.size() == 0:
		return ERR_INVALID_PARAMETER
	_pose = msg
	return OK


# ---- world lookups -------------------------------------------------------------------------

# Type or recipe id by name from JOINED, or -1.
func type_id(tname: String) -> int:
	for t in world.get("types", []):
		if t.name == tname:
			return t.id
	return -1


func type_name(id: int) -> String:
	for t in world.get("types", []):
		if t.id == id:
			return t.name
	return ""


func type_kind(id: int) -> int:
	for t in world.get("types", []):
		if t.id == id:
			return t.kind
	return 0


func recipe_id(rname: String) -> int:
	for r in world.get("recipes", []):
		if r.name == rname:
			return r.id
	return -1


# Entities of a type (by name), in ascending id order.
func entities_of_type(tname: String) -> Array:
	var id = type_id(tname)
	var out = []
	for e in entities.values():
		if e.type == id:
			out.append(e)
	out.sort_custom(self, "_by_id")
	return out


func _by_id(a, b) -> bool:
	return a.id < b.id


# ---- internals -----------------------------------------------------------------------------

func _next_req() -> int:
	_req = (_req % 0x7fffffff) + 1
	return _req


func _send(msg: PoolByteArray, req: int, fail_code: int) -> int:
	if msg.size() == 0:
		return fail_code
	if state == State.DISCONNECTED:
		return Proto.E_STATE
	_queue(msg)
	return req


func _queue(msg: PoolByteArray) -> void:
	if msg.size() > 0:
		_out.append(msg)


# Packs the queued messages (and the latest pose) into binary WebSocket messages.
func _flush() -> void:
	if state != State.OPEN or _ws == null:
		return
	if _pose.size() > 0 and in_world:
		# The server takes poses only from joined players; until then the latest one waits.
		_out.append(_pose)
		_pose = PoolByteArray()
	if _out.empty():
		return
	var peer = _ws.get_peer(1)
	var cur = PoolByteArray()
	for m in _out:
		if cur.size() > 0 and cur.size() + m.size() > max_message:
			_put(peer, cur)
			cur = PoolByteArray()
		cur.append_array(m)
		stats.msgs_out += 1
	if cur.size() > 0:
		_put(peer, cur)
	_out.clear()


func _put(peer, data: PoolByteArray) -> void:
	var err = peer.put_packet(data)
	if err != OK:
		_local_error(Proto.E_CONNECTION, "put_packet failed: %d" % err)
	stats.ws_out += 1
	stats.bytes_out += data.size()


func _local_error(code: int, text: String) -> void:
	if verbose:
		print("otherworld: ", Proto.error_name(code), ": ", text)
	emit_signal("error", {"req": 0, "code": code, "text": text, "local": true})


func _on_ws_open(_protocol: String) -> void:
	_ws.get_peer(1).set_write_mode(WebSocketPeer.WRITE_MODE_BINARY)
	state = State.OPEN
	emit_signal("connected")
	_flush()


func _on_ws_error() -> void:
	_local_error(Proto.E_CONNECTION, "could not open the WebSocket")
	_closed(false)


func _on_ws_closed(was_clean: bool) -> void:
	# Deliver what arrived before the close (collected by data_received) first.
	if state == State.OPEN:
		_in_close = true
		_dispatch_inbox()
		_in_close = false
	_closed(was_clean)


func _on_ws_close_request(_code: int, _reason: String) -> void:
	pass


func _closed(clean: bool) -> void:
	state = State.DISCONNECTED
	in_world = false
	# This runs inside a signal of the WebSocketClient: freeing it now would destroy the emitter.
	_dead_ws = _ws
	_ws = null
	_inbox.clear()
	emit_signal("disconnected", clean)


func _on_ws_message(data: PoolByteArray) -> void:
	stats.ws_in += 1
	stats.bytes_in += data.size()
	var d = Proto.decode_messages(data, _dec)
	for m in d.messages:
		stats.msgs_in += 1
		_dispatch(m)
		if _ws == null:
			return
	if d.error != "":
		_local_error(Proto.E_PROTO, "malformed server message: " + d.error)
		close(Proto.BYE_PROTOCOL, "malformed message")


func _dispatch(m: Dictionary) -> void:
	match m.type:
		Proto.MSG_WELCOME:
			welcome_info = m
			if m.max_message > 0:
				max_message = m.max_message
			emit_signal("welcome", m)
		Proto.MSG_OK:
			emit_signal("ok", m.req)
		Proto.MSG_SESSION:
			_on_session(m)
		Proto.MSG_ERROR:
			if _req_seq.has(m.req):
				# The action was refused without APPLIED (rate limit, too old): forget it.
				var seq = _req_seq[m.req]
				m.seq = seq
				_unconfirmed.erase(seq)
				_req_seq.erase(m.req)
			emit_signal("error", m)
		Proto.MSG_JOINED:
			_on_joined(m)
		Proto.MSG_APPLIED:
			_req_seq.erase(m.req)
			emit_signal("applied", m)
		Proto.MSG_DURABLE:
			if m.status == 0:
				for s in m.seqs:
					if _unconfirmed.has(s):
						_req_seq.erase(_unconfirmed[s].req)
						_unconfirmed.erase(s)
			emit_signal("durable", m)
		Proto.MSG_SNAPSHOT:
			_on_snapshot(m)
		Proto.MSG_POSES:
			for en in m.entries:
				avatar_poses[en.avatar] = en.pose
			emit_signal("poses", m.tick, m.entries)
		Proto.MSG_EVENT:
			emit_signal("event", m)
		Proto.MSG_PONG:
			var now = OS.get_ticks_usec()
			m.rtt_us = now - m.client_time
			if m.rtt_us >= 0 and m.client_time > 0:
				rtt_us = m.rtt_us
				server_offset_us = m.server_time_us - (m.client_time + rtt_us / 2)
			emit_signal("pong", m)
		Proto.MSG_SERVER_BYE:
			emit_signal("bye", m.reason, m.text)
		_:
			_local_error(Proto.E_PROTO, "unexpected %s from the server" % m.name)


func _on_session(m: Dictionary) -> void:
	var same = not session_info.empty() and session_info.account == m.account
	if not m.resumed or not same:
		# A fresh session: numbers restart from last_seq; old unconfirmed actions are lost.
		for s in _unconfirmed.keys():
			var u = _unconfirmed[s]
			emit_signal("error", {"req": u.req, "code": Proto.E_NO_SESSION, "seq": s,
				"text": "action lost with the replaced session", "local": true})
		_unconfirmed.clear()
		_req_seq.clear()
		last_seq = m.last_seq
	else:
		last_seq = max(last_seq, m.last_seq)
	_resumed = m.resumed
	session_info = m
	emit_signal("session", m)


func _on_joined(m: Dictionary) -> void:
	world = m
	in_world = true
	# Re-send, in seq order, every action not yet durable that was not sent on this connection.
	var seqs = _unconfirmed.keys()
	seqs.sort()
	for s in seqs:
		var u = _unconfirmed[s]
		if u.gen == _conn_gen:
			continue
		var req = _next_req()
		_req_seq.erase(u.req)
		u.req = req
		u.gen = _conn_gen
		_req_seq[req] = s
		_queue(Proto.encode_action(req, s, u.action))
	emit_signal("joined", m)


func _named_props(e: Dictionary) -> Dictionary:
	var out = {}
	var keys = world.get("keys", [])
	for p in e.props:
		var k = str(p.key)
		if p.key < keys.size():
			k = keys[p.key]
		out[k] = p.value
	return out


func _on_snapshot(m: Dictionary) -> void:
	if m.id != _snap_id:
		# A new snapshot starts (an unfinished one is abandoned and never ACKed).
		_snap_id = m.id
		_snap_base = m.base
		_snap_seen.clear()
	for e in m.entities:
		e.properties = _named_props(e)
		entities[e.id] = e
		if _snap_base == 0:
			_snap_seen[e.id] = true
		emit_signal("entity_updated", e)
	for id in m.removed:
		_snap_seen.erase(id)
		if entities.has(id):
			entities.erase(id)
			emit_signal("entity_removed", id)
	if m.flags & Proto.SNAP_MORE:
		return
	if _snap_base == 0:
		for id in entities.keys():
			if not _snap_seen.has(id):
				entities.erase(id)
				emit_signal("entity_removed", id)
	var id_done = _snap_id
	_snap_id = -1
	_snap_seen.clear()
	_queue(Proto.encode_ack(id_done))
	emit_signal("snapshot_applied", id_done, m.base, m.frame)
