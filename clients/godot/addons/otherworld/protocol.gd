# otherworld protocol, versions 1 and 2: the whole binary codec (docs/protocol.md) in one file.
#
# Plain static functions and constants; no scene, no node, no engine singletons, so that the file
# ports to Godot 4 with mechanical renames (PoolByteArray -> PackedByteArray, Quat -> Quaternion,
# PoolByteArray.subarray(a, b) -> slice(a, b + 1), `extends Reference` -> `extends RefCounted`).
#
# Use it with:  const Proto = preload("res://addons/otherworld/protocol.gd")
#
# Encoding: every encode_* function returns one complete protocol message (3-byte header + body)
# as a PoolByteArray, or an EMPTY PoolByteArray when an argument cannot be encoded (string too
# long, bad pose, ...). Several messages may be concatenated into one WebSocket message.
#
# Decoding: decode_messages(bytes) reads every protocol message of one WebSocket message and
# returns {"messages": [Dictionary...], "error": ""}. On the first malformed message it stops and
# sets "error" to a one-line reason ("SNAPSHOT: body too short at entity 3 hp"); the messages
# decoded before it are still returned. Each message Dictionary has "type" (MSG_*), "name" and the
# fields of docs/protocol.md under their doc names. Positions are given both in metres (Vector3)
# and as the raw millimetres ("pos_mm"); rotations both as Quat and packed ("rot_packed").
#
# Versions: version 2 differs from 1 only in POSES (compact poses, whose avatars are slots bound
# on the connection). Decode a connection's messages with one state, decode_messages(bytes, st)
# with st = new_decode_state(): it keeps the version WELCOME agreed, JOINED's region size and the
# slots. Without a state POSES are read as version 1.
#
# Integers: GDScript ints are signed 64-bit. u64 fields (entity ids, seqs, times) are read and
# written bit for bit; values >= 2^63 show up negative, which ids and counters never reach.
extends Reference

const VERSION = 2      # the newest version this codec speaks; HELLO asks for it by default
const VERSION_MIN = 1
const POSE2_WIDE = 0x80  # compact pose shape bit 7: the root is i32 world millimetres
const HEADER_SIZE = 3
const MAX_BODY = 65535
const TOKEN_LEN = 32
const CLIENT_MAX_MESSAGE = 4096  # default max_message until WELCOME says otherwise
const NAME_MIN = 3
const NAME_MAX = 32
const PASSWORD_MIN = 8
const PASSWORD_MAX = 128
const TEXT_MAX = 512
const CLIENT_NAME_MAX = 64
const MAX_TRACKERS = 8
const MAX_PROPS = 16
const SUBPROTOCOL = "otherworld.v1"

# Message types (include/otherworld/protocol.h).
const MSG_HELLO = 0x01
const MSG_REGISTER = 0x02
const MSG_LOGIN = 0x03
const MSG_RESUME = 0x04
const MSG_JOIN = 0x05
const MSG_LEAVE = 0x06
const MSG_LOGOUT = 0x07
const MSG_ACTION = 0x08
const MSG_POSE = 0x09
const MSG_ACK = 0x0a
const MSG_CHAT = 0x0b
const MSG_PING = 0x0c
const MSG_BYE = 0x0d
const MSG_WELCOME = 0x81
const MSG_OK = 0x82
const MSG_SESSION = 0x83
const MSG_ERROR = 0x84
const MSG_JOINED = 0x85
const MSG_APPLIED = 0x86
const MSG_DURABLE = 0x87
const MSG_SNAPSHOT = 0x88
const MSG_POSES = 0x89
const MSG_EVENT = 0x8a
const MSG_PONG = 0x8b
const MSG_SERVER_BYE = 0x8c

const MSG_NAMES = {
	0x01: "HELLO", 0x02: "REGISTER", 0x03: "LOGIN", 0x04: "RESUME", 0x05: "JOIN", 0x06: "LEAVE",
	0x07: "LOGOUT", 0x08: "ACTION", 0x09: "POSE", 0x0a: "ACK", 0x0b: "CHAT", 0x0c: "PING",
	0x0d: "BYE", 0x81: "WELCOME", 0x82: "OK", 0x83: "SESSION", 0x84: "ERROR", 0x85: "JOINED",
	0x86: "APPLIED", 0x87: "DURABLE", 0x88: "SNAPSHOT", 0x89: "POSES", 0x8a: "EVENT",
	0x8b: "PONG", 0x8c: "SERVER_BYE",
}

# Body sizes: [min, max] (max -1: exactly min). Checked before any field is read.
const LAYOUTS = {
	0x01: [7, 4 + 2 + 1 + 64], 0x02: [6, 4 + 2 + 2 * 255], 0x03: [6, 4 + 2 + 2 * 255],
	0x04: [36, -1], 0x05: [4, -1], 0x06: [4, -1], 0x07: [4, -1], 0x08: [75, -1],
	0x09: [18, 18 + 10 * (3 + 8)], 0x0a: [4, -1], 0x0b: [6, 6 + 512], 0x0c: [12, -1],
	0x0d: [4, 4 + 512], 0x81: [23, 23 + 255], 0x82: [4, -1], 0x83: [66, -1],
	0x84: [10, 10 + 512], 0x85: [4, 65535], 0x86: [37, -1], 0x87: [14, 65535],
	0x88: [13, 65535], 0x89: [6, 65535], 0x8a: [11, 11 + 512], 0x8b: [20, -1],
	0x8c: [4, 4 + 512],
}

# Action types.
const ACT_MOVE = 1
const ACT_HARVEST = 2
const ACT_BUILD = 3
const ACT_CRAFT = 4
const ACT_TRANSFER = 5
const ACT_INTERACT = 6
const ACT_DESTROY = 7

# BYE reasons.
const BYE_NORMAL = 1
const BYE_SHUTDOWN = 2
const BYE_TAKEN_OVER = 3
const BYE_PROTOCOL = 4
const BYE_TOO_SLOW = 5
const BYE_RATE = 6
const BYE_IDLE = 7
const BYE_FULL = 8
const BYE_KICKED = 9

const ROLE_PLAYER = 0
const ROLE_BUILDER = 1
const ROLE_ADMIN = 2

const EVENT_CHAT = 1
const EVENT_SYSTEM = 2

# Pose bones (bit i of the mask).
const BONE_HEAD = 0
const BONE_LEFT_HAND = 1
const BONE_RIGHT_HAND = 2
const MASK_HEAD = 1
const MASK_LEFT_HAND = 2
const MASK_RIGHT_HAND = 4

# Entity kinds (JOINED).
const KIND_RESOURCE = 1
const KIND_ITEM = 2
const KIND_STRUCTURE = 3
const KIND_CONTAINER = 4
const KIND_VEHICLE = 5
const KIND_COLLIDER = 6
const KIND_CAPSULE = 7
const KIND_MARKER = 8
const KIND_PLANE = 9
const KIND_AVATAR = 10

# Property value types.
const PROP_INT = 1
const PROP_FLOAT = 2
const PROP_STRING = 3
const PROP_REF = 4

# Snapshot flags.
const SNAP_MORE = 1

# Error and reason codes (include/otherworld/error.h).
const E_OK = 0
const E_INVAL = -1001
const E_NOMEM = -1002
const E_NOT_FOUND = -1003
const E_FORBIDDEN = -1004
const E_BAD_COUNT = -1005
const E_UNKNOWN_ACTION = -1006
const E_NOT_ENOUGH = -1007
const E_FULL = -1008
const E_NOT_CONTAINER = -1009
const E_NOT_HARVESTABLE = -1010
const E_NOT_BUILDABLE = -1011
const E_UNKNOWN_TYPE = -1012
const E_UNKNOWN_RECIPE = -1013
const E_NOT_EMPTY = -1014
const E_NOT_INTERACTIVE = -1015
const E_OUT_OF_BOUNDS = -1016
const E_TOO_FAR = -1017
const E_NOT_MOVABLE = -1018
const E_NOT_ITEM = -1019
const E_NOT_DESTROYABLE = -1020
const E_SEQ_TOO_OLD = -1021
const E_NO_SESSION = -1022
const E_CONTENT = -1023
const E_CONFIG = -1024
const E_STORE = -1025
const E_CORRUPT = -1026
const E_BUSY = -1027
const E_STORE_FAILED = -1028
const E_SAME_CONTAINER = -1029
const E_NO_AVATAR = -1030
const E_VERSION = -1031
const E_PROTO = -1032
const E_TOO_LARGE = -1033
const E_AUTH = -1034
const E_NAME_TAKEN = -1035
const E_TOKEN = -1036
const E_RATE = -1037
const E_STATE = -1038
const E_SERVER_FULL = -1039
const E_TOO_MANY_SESSIONS = -1040
const E_BAD_NAME = -1041
const E_TEXT_TOO_LONG = -1042
const E_SHUTTING_DOWN = -1043
# Local only (never on the wire): the WebSocket could not be opened or was lost.
const E_CONNECTION = -1100

const ERROR_NAMES = {
	0: "OK", -1001: "OW_E_INVAL", -1002: "OW_E_NOMEM", -1003: "OW_E_NOT_FOUND",
	-1004: "OW_E_FORBIDDEN", -1005: "OW_E_BAD_COUNT", -1006: "OW_E_UNKNOWN_ACTION",
	-1007: "OW_E_NOT_ENOUGH", -1008: "OW_E_FULL", -1009: "OW_E_NOT_CONTAINER",
	-1010: "OW_E_NOT_HARVESTABLE", -1011: "OW_E_NOT_BUILDABLE", -1012: "OW_E_UNKNOWN_TYPE",
	-1013: "OW_E_UNKNOWN_RECIPE", -1014: "OW_E_NOT_EMPTY", -1015: "OW_E_NOT_INTERACTIVE",
	-1016: "OW_E_OUT_OF_BOUNDS", -1017: "OW_E_TOO_FAR", -1018: "OW_E_NOT_MOVABLE",
	-1019: "OW_E_NOT_ITEM", -1020: "OW_E_NOT_DESTROYABLE", -1021: "OW_E_SEQ_TOO_OLD",
	-1022: "OW_E_NO_SESSION", -1023: "OW_E_CONTENT", -1024: "OW_E_CONFIG", -1025: "OW_E_STORE",
	-1026: "OW_E_CORRUPT", -1027: "OW_E_BUSY", -1028: "OW_E_STORE_FAILED",
	-1029: "OW_E_SAME_CONTAINER", -1030: "OW_E_NO_AVATAR", -1031: "OW_E_VERSION",
	-1032: "OW_E_PROTO", -1033: "OW_E_TOO_LARGE", -1034: "OW_E_AUTH", -1035: "OW_E_NAME_TAKEN",
	-1036: "OW_E_TOKEN", -1037: "OW_E_RATE", -1038: "OW_E_STATE", -1039: "OW_E_SERVER_FULL",
	-1040: "OW_E_TOO_MANY_SESSIONS", -1041: "OW_E_BAD_NAME", -1042: "OW_E_TEXT_TOO_LONG",
	-1043: "OW_E_SHUTTING_DOWN", -1100: "CONNECTION",
}

const QUAT_SCALE = 511.0
const QUAT_MAX = 0.70710678


static func error_name(code: int) -> String:
	if ERROR_NAMES.has(code):
		return ERROR_NAMES[code]
	return "E%d" % code


static func msg_name(type: int) -> String:
	if MSG_NAMES.has(type):
		return MSG_NAMES[type]
	return "UNKNOWN(0x%02x)" % type


# ---- quantization --------------------------------------------------------------------------

# Metres to millimetres, rounded half away from zero, clamped to int32 (NaN gives 0).
static func quant_mm(metres: float) -> int:
	if is_nan(metres):
		return 0
	var mm = round(metres * 1000.0)
	if mm > 2147483647.0:
		return 2147483647
	if mm < -2147483648.0:
		return -2147483648
	return int(mm)


static func dequant_mm(mm: int) -> float:
	return float(mm) / 1000.0


static func mm3(v: Vector3) -> Array:
	return [quant_mm(v.x), quant_mm(v.y), quant_mm(v.z)]


# Packed quaternion, "smallest three": bits 31..30 index of the largest component (dropped, made
# positive), then the other three in x, y, z, w order as 10-bit two's complement round(v/QMAX*511).
static func quat_pack(q: Quat) -> int:
	var c = [q.x, q.y, q.z, q.w]
	var big = 0
	for i in range(1, 4):
		if abs(c[i]) > abs(c[big]):
			big = i
	var sgn = 1.0
	if c[big] < 0.0:
		sgn = -1.0
	var out = big << 30
	var shift = 20
	for i in range(4):
		if i == big:
			continue
		var v = c[i] * sgn / QUAT_MAX
		if is_nan(v):
			v = 0.0
		v = clamp(v, -1.0, 1.0)
		var iv = int(round(v * QUAT_SCALE))
		out |= (iv & 0x3ff) << shift
		shift -= 10
	return out & 0xffffffff


static func quat_unpack(packed: int) -> Quat:
	var big = (packed >> 30) & 3
	var c = [0.0, 0.0, 0.0, 0.0]
	var shift = 20
	var sum = 0.0
	for i in range(4):
		if i == big:
			continue
		var iv = (packed >> shift) & 0x3ff
		if iv & 0x200:
			iv -= 0x400
		c[i] = float(iv) / QUAT_SCALE * QUAT_MAX
		sum += c[i] * c[i]
		shift -= 10
	c[big] = sqrt(1.0 - sum) if sum < 1.0 else 0.0
	return Quat(c[0], c[1], c[2], c[3])


# ---- writing -------------------------------------------------------------------------------

static func _w() -> StreamPeerBuffer:
	var w = StreamPeerBuffer.new()
	w.big_endian = false
	return w


# Wraps a body into a message: u8 type, u16 length, body.
static func frame(type: int, body: PoolByteArray) -> PoolByteArray:
	if body.size() > MAX_BODY:
		return PoolByteArray()
	var w = _w()
	w.put_u8(type)
	w.put_u16(body.size())
	var out = w.data_array
	out.append_array(body)
	return out


static func utf8_ok(b: PoolByteArray) -> bool:
	# Well-formed UTF-8 without overlongs, surrogates or NUL (the server's rule).
	var i = 0
	var n = b.size()
	while i < n:
		var c = b[i]
		if c == 0:
			return false
		if c < 0x80:
			i += 1
			continue
		var l = 0
		if (c & 0xe0) == 0xc0:
			l = 2
		elif (c & 0xf0) == 0xe0:
			l = 3
		elif (c & 0xf8) == 0xf0:
			l = 4
		if l == 0 or i + l > n:
			return false
		var cp = c & (0x7f >> l)
		for k in range(1, l):
			if (b[i + k] & 0xc0) != 0x80:
				return false
			cp = (cp << 6) | (b[i + k] & 0x3f)
		if (l == 2 and cp < 0x80) or (l == 3 and cp < 0x800) or (l == 4 and cp < 0x10000):
			return false
		if cp > 0x10ffff or (cp >= 0xd800 and cp <= 0xdfff):
			return false
		i += l
	return true


# Appends str8 (wide = false) or str16 (wide = true). Returns false if the text does not fit.
static func _put_str(w: StreamPeerBuffer, text: String, wide: bool) -> bool:
	var b = text.to_utf8()
	if not utf8_ok(b):
		return false
	if wide:
		if b.size() > 65535:
			return false
		w.put_u16(b.size())
	else:
		if b.size() > 255:
			return false
		w.put_u8(b.size())
	w.put_data(b)
	return true


static func _put_f32s(w: StreamPeerBuffer, values: Array) -> void:
	for v in values:
		w.put_float(v)


static func encode_hello(req: int, client_name: String, version: int = VERSION) -> PoolByteArray:
	if client_name.to_utf8().size() > CLIENT_NAME_MAX:
		return PoolByteArray()
	var w = _w()
	w.put_u32(req)
	w.put_u16(version)
	if not _put_str(w, client_name, false):
		return PoolByteArray()
	return frame(MSG_HELLO, w.data_array)


# REGISTER (type MSG_REGISTER) or LOGIN (MSG_LOGIN). Lengths are checked against the doc's rules.
static func encode_credentials(type: int, req: int, name: String, password: String) -> PoolByteArray:
	var nb = name.to_utf8().size()
	var pb = password.to_utf8().size()
	if nb < NAME_MIN or nb > NAME_MAX or pb < PASSWORD_MIN or pb > PASSWORD_MAX:
		return PoolByteArray()
	var w = _w()
	w.put_u32(req)
	if not _put_str(w, name, false) or not _put_str(w, password, false):
		return PoolByteArray()
	return frame(type, w.data_array)


static func encode_register(req: int, name: String, password: String) -> PoolByteArray:
	return encode_credentials(MSG_REGISTER, req, name, password)


static func encode_login(req: int, name: String, password: String) -> PoolByteArray:
	return encode_credentials(MSG_LOGIN, req, name, password)


static func encode_resume(req: int, token: PoolByteArray) -> PoolByteArray:
	if token.size() != TOKEN_LEN:
		return PoolByteArray()
	var w = _w()
	w.put_u32(req)
	w.put_data(token)
	return frame(MSG_RESUME, w.data_array)


# JOIN, LEAVE, LOGOUT (and OK): a body of u32 req.
static func encode_req_only(type: int, req: int) -> PoolByteArray:
	var w = _w()
	w.put_u32(req)
	return frame(type, w.data_array)


static func encode_join(req: int) -> PoolByteArray:
	return encode_req_only(MSG_JOIN, req)


static func encode_leave(req: int) -> PoolByteArray:
	return encode_req_only(MSG_LEAVE, req)


static func encode_logout(req: int) -> PoolByteArray:
	return encode_req_only(MSG_LOGOUT, req)


# An action Dictionary: "action" (ACT_*), optional "kind", "target", "dest", "count",
# "pos" (Vector3, metres), "rot" (Quat), "scale" (Vector3). Missing fields are 0 / identity / 1.
static func action_defaults(a: Dictionary) -> Dictionary:
	var out = {
		"action": int(a.get("action", 0)), "kind": int(a.get("kind", 0)),
		"target": int(a.get("target", 0)), "dest": int(a.get("dest", 0)),
		"count": int(a.get("count", 0)), "pos": a.get("pos", Vector3()),
		"rot": a.get("rot", Quat(0, 0, 0, 1)), "scale": a.get("scale", Vector3(1, 1, 1)),
	}
	return out


static func encode_action(req: int, seq: int, action: Dictionary) -> PoolByteArray:
	var a = action_defaults(action)
	if a.action < 0 or a.action > 255 or a.kind < 0 or a.kind > 65535:
		return PoolByteArray()
	var w = _w()
	w.put_u32(req)
	w.put_u64(seq)
	w.put_u8(a.action)
	w.put_u16(a.kind)
	w.put_u64(a.target)
	w.put_u64(a.dest)
	w.put_u32(a.count)
	var p: Vector3 = a.pos
	var r: Quat = a.rot
	var s: Vector3 = a.scale
	_put_f32s(w, [p.x, p.y, p.z, r.x, r.y, r.z, r.w, s.x, s.y, s.z])
	return frame(MSG_ACTION, w.data_array)


# A pose Dictionary (quantized, as on the wire):
#   "mask" (bits MASK_*), "ntrackers" (0..8), "root" [x, y, z] millimetres, "root_rot" packed,
#   "bones": Array of {"pos": [x, y, z] mm relative to the root (int16), "rot": packed}, in the
#   order head, left hand, right hand (those in the mask), then the trackers.
# decode adds the convenience fields "root_pos" (Vector3 m), "root_quat" (Quat) and per bone
# "position" (Vector3 m) and "quat" (Quat).
#
# make_pose() builds one from engine values: root position (m) and rotation, and optional
# bones (each null or [Vector3 relative position in m, Quat]). Returns {} when a bone is further
# than 32.767 m from the root on an axis, or on more than 8 trackers.
static func make_pose(root_pos: Vector3, root_rot: Quat, head = null, left_hand = null,
		right_hand = null, trackers: Array = []) -> Dictionary:
	if trackers.size() > MAX_TRACKERS:
		return {}
	var mask = 0
	var bones = []
	var fixed = [head, left_hand, right_hand]
	var all = []
	for i in range(3):
		if fixed[i] != null:
			mask |= 1 << i
			all.append(fixed[i])
	for t in trackers:
		all.append(t)
	for b in all:
		var mm = mm3(b[0])
		for v in mm:
			if v < -32767 or v > 32767:
				return {}
		bones.append({"pos": mm, "rot": quat_pack(b[1].normalized())})
	return {
		"mask": mask, "ntrackers": trackers.size(), "root": mm3(root_pos),
		"root_rot": quat_pack(root_rot.normalized()), "bones": bones,
	}


static func bone_count(mask: int, ntrackers: int) -> int:
	return (mask & 1) + ((mask >> 1) & 1) + ((mask >> 2) & 1) + ntrackers


static func _put_pose(w: StreamPeerBuffer, p: Dictionary) -> bool:
	var mask = int(p.get("mask", 0))
	var nt = int(p.get("ntrackers", 0))
	var bones = p.get("bones", [])
	if mask < 0 or mask > 7 or nt < 0 or nt > MAX_TRACKERS or bones.size() != bone_count(mask, nt):
		return false
	w.put_u8(mask)
	w.put_u8(nt)
	for v in p.root:
		w.put_32(v)
	w.put_u32(p.root_rot)
	for b in bones:
		for v in b.pos:
			if v < -32768 or v > 32767:
				return false
			w.put_16(v)
		w.put_u32(b.rot)
	return true


static func encode_pose(pose: Dictionary) -> PoolByteArray:
	var w = _w()
	if pose.empty() or not _put_pose(w, pose):
		return PoolByteArray()
	return frame(MSG_POSE, w.data_array)


static func encode_ack(snapshot: int) -> PoolByteArray:
	var w = _w()
	w.put_u32(snapshot)
	return frame(MSG_ACK, w.data_array)


static func encode_chat(req: int, text: String) -> PoolByteArray:
	if text.to_utf8().size() > TEXT_MAX:
		return PoolByteArray()
	var w = _w()
	w.put_u32(req)
	if not _put_str(w, text, true):
		return PoolByteArray()
	return frame(MSG_CHAT, w.data_array)


static func encode_ping(req: int, client_time: int) -> PoolByteArray:
	var w = _w()
	w.put_u32(req)
	w.put_u64(client_time)
	return frame(MSG_PING, w.data_array)


# BYE (client) or SERVER_BYE (type MSG_SERVER_BYE, for tests and mock servers).
static func encode_bye(reason: int, text: String = "", type: int = MSG_BYE) -> PoolByteArray:
	if text.to_utf8().size() > TEXT_MAX:
		return PoolByteArray()
	var w = _w()
	w.put_u16(reason)
	if not _put_str(w, text, true):
		return PoolByteArray()
	return frame(type, w.data_array)


# ---- server messages, encoded (for tests and mock servers) ---------------------------------

static func encode_welcome(req: int, tick_hz: int, pose_hz: int, server_time_us: int,
		max_message: int, server_name: String) -> PoolByteArray:
	var w = _w()
	w.put_u32(req)
	w.put_u16(VERSION)
	w.put_u16(tick_hz)
	w.put_u16(pose_hz)
	w.put_u64(server_time_us)
	w.put_u32(max_message)
	if not _put_str(w, server_name, false):
		return PoolByteArray()
	return frame(MSG_WELCOME, w.data_array)


static func encode_ok(req: int) -> PoolByteArray:
	return encode_req_only(MSG_OK, req)


static func encode_error(req: int, code: int, text: String) -> PoolByteArray:
	var w = _w()
	w.put_u32(req)
	w.put_32(code)
	if not _put_str(w, text, true):
		return PoolByteArray()
	return frame(MSG_ERROR, w.data_array)


static func encode_applied(req: int, seq: int, code: int, entity: int, count: int, frame_no: int,
		replayed: bool) -> PoolByteArray:
	var w = _w()
	w.put_u32(req)
	w.put_u64(seq)
	w.put_32(code)
	w.put_u64(entity)
	w.put_u32(count)
	w.put_u64(frame_no)
	w.put_u8(1 if replayed else 0)
	return frame(MSG_APPLIED, w.data_array)


static func encode_durable(frame_no: int, status: int, seqs: Array) -> PoolByteArray:
	var w = _w()
	w.put_u64(frame_no)
	w.put_32(status)
	w.put_u16(seqs.size())
	for s in seqs:
		w.put_u64(s)
	return frame(MSG_DURABLE, w.data_array)


# Entity Dictionary as decoded (raw fields: id, type, owner, parent, pos_mm, rot_packed, scale
# (Vector3), hp, count, props: Array of {key, type, value}).
static func _put_entity(w: StreamPeerBuffer, e: Dictionary) -> bool:
	w.put_u64(e.id)
	w.put_u16(e.type)
	w.put_u64(e.get("owner", 0))
	w.put_u64(e.get("parent", 0))
	for v in e.pos_mm:
		w.put_32(v)
	w.put_u32(e.rot_packed)
	var s: Vector3 = e.get("scale", Vector3(1, 1, 1))
	_put_f32s(w, [s.x, s.y, s.z])
	w.put_32(e.get("hp", 0))
	w.put_u32(e.get("count", 1))
	var props = e.get("props", [])
	if props.size() > MAX_PROPS:
		return false
	w.put_u8(props.size())
	for p in props:
		w.put_u16(p.key)
		w.put_u8(p.type)
		match int(p.type):
			PROP_INT, PROP_REF:
				w.put_64(p.value)
			PROP_FLOAT:
				w.put_double(p.value)
			PROP_STRING:
				if not _put_str(w, p.value, true):
					return false
			_:
				return false
	return true


static func encode_snapshot(id: int, base: int, frame_no: int, flags: int, entities: Array,
		removed: Array) -> PoolByteArray:
	var w = _w()
	w.put_u32(id)
	w.put_u32(base)
	w.put_u64(frame_no)
	w.put_u8(flags)
	w.put_u16(entities.size())
	for e in entities:
		if not _put_entity(w, e):
			return PoolByteArray()
	w.put_u16(removed.size())
	for r in removed:
		w.put_u64(r)
	return frame(MSG_SNAPSHOT, w.data_array)


# Version 2 POSES as the server writes them (for tests): entries of {"slot", "avatar" (0: the
# slot is already bound), "pose"}, roots relative to base cell (bx, bz) of rs metres.
static func encode_poses2(tick: int, bx: int, bz: int, rs: float, entries: Array) -> PoolByteArray:
	var w = _w()
	w.put_u32(tick)
	w.put_32(bx)
	w.put_32(bz)
	w.put_u16(entries.size())
	var cell_mm = rs * 1000.0
	for en in entries:
		var p = en.pose
		w.put_u16(en.slot | (0x8000 if en.avatar != 0 else 0))
		if en.avatar != 0:
			w.put_u64(en.avatar)
		var cx = int(floor(p.root[0] / cell_mm))
		var cz = int(floor(p.root[2] / cell_mm))
		var fx = int(round((p.root[0] - cx * cell_mm) / cell_mm * 65536.0))
		var fz = int(round((p.root[2] - cz * cell_mm) / cell_mm * 65536.0))
		if fx >= 65536:
			fx = 0
			cx += 1
		if fz >= 65536:
			fz = 0
			cz += 1
		var dx = cx - bx
		var dz = cz - bz
		var wide = dx < -128 or dx > 127 or dz < -128 or dz > 127 or p.root[1] < -32768 or p.root[1] > 32767
		w.put_u8(p.mask | (p.ntrackers << 3) | (POSE2_WIDE if wide else 0))
		if wide:
			for v in p.root:
				w.put_32(v)
		else:
			w.put_8(dx)
			w.put_8(dz)
			w.put_u16(fx)
			w.put_u16(fz)
			w.put_16(p.root[1])
		w.put_u32(p.root_rot)
		for b in p.bones:
			var v = 0
			var shift = 20
			for c in b.pos:
				var q = int(round(c / 4.0))
				q = int(clamp(q, -511, 511))
				v |= (q & 0x3ff) << shift
				shift -= 10
			w.put_u32(v)
			w.put_u32(b.rot)
	return frame(MSG_POSES, w.data_array)


# entries: Array of {"avatar": id, "pose": pose Dictionary}.
static func encode_poses(tick: int, entries: Array) -> PoolByteArray:
	var w = _w()
	w.put_u32(tick)
	w.put_u16(entries.size())
	for en in entries:
		w.put_u64(en.avatar)
		if not _put_pose(w, en.pose):
			return PoolByteArray()
	return frame(MSG_POSES, w.data_array)


# ---- reading -------------------------------------------------------------------------------

# A bounds-checked reader over one message body. After the first failure every read returns a
# zero value and `err` holds the reason; callers check `err` once at the end.
class Reader:
	var buf: StreamPeerBuffer
	var end: int = 0
	var err: String = ""

	func _init(data: PoolByteArray) -> void:
		buf = StreamPeerBuffer.new()
		buf.big_endian = false
		buf.data_array = data

	func pos() -> int:
		return buf.get_position()

	func left() -> int:
		return end - buf.get_position()

	func fail(what: String) -> void:
		if err == "":
			err = what

	func need(n: int, what: String) -> bool:
		if err != "":
			return false
		if n < 0 or buf.get_position() + n > end:
			err = "body too short at " + what
			return false
		return true

	func u8(what: String) -> int:
		if not need(1, what):
			return 0
		return buf.get_u8()

	func u16(what: String) -> int:
		if not need(2, what):
			return 0
		return buf.get_u16()

	func i16(what: String) -> int:
		if not need(2, what):
			return 0
		return buf.get_16()

	func u32(what: String) -> int:
		if not need(4, what):
			return 0
		return buf.get_u32()

	func i32(what: String) -> int:
		if not need(4, what):
			return 0
		return buf.get_32()

	func u64(what: String) -> int:
		if not need(8, what):
			return 0
		return buf.get_u64()

	func i64(what: String) -> int:
		if not need(8, what):
			return 0
		return buf.get_64()

	func f32(what: String) -> float:
		if not need(4, what):
			return 0.0
		return buf.get_float()

	func f64(what: String) -> float:
		if not need(8, what):
			return 0.0
		return buf.get_double()

	func bytes(n: int, what: String) -> PoolByteArray:
		if n == 0 or not need(n, what):
			return PoolByteArray()
		var r = buf.get_data(n)
		return r[1]

	# str8 / str16 of at most `max_len` bytes of well-formed UTF-8.
	func text(wide: bool, max_len: int, what: String) -> String:
		var n = u16(what) if wide else u8(what)
		var b = bytes(n, what)
		if err != "":
			return ""
		if n > max_len:
			fail(what + " longer than %d bytes" % max_len)
			return ""
		# Same rule as the encoder (and the server): no NUL, no overlongs, no surrogates.
		var i = 0
		while i < n:
			var c = b[i]
			if c == 0:
				fail(what + " is not valid UTF-8")
				return ""
			if c < 0x80:
				i += 1
				continue
			var l = 0
			if (c & 0xe0) == 0xc0:
				l = 2
			elif (c & 0xf0) == 0xe0:
				l = 3
			elif (c & 0xf8) == 0xf0:
				l = 4
			if l == 0 or i + l > n:
				fail(what + " is not valid UTF-8")
				return ""
			var cp = c & (0x7f >> l)
			for k in range(1, l):
				if (b[i + k] & 0xc0) != 0x80:
					fail(what + " is not valid UTF-8")
					return ""
				cp = (cp << 6) | (b[i + k] & 0x3f)
			if (l == 2 and cp < 0x80) or (l == 3 and cp < 0x800) or (l == 4 and cp < 0x10000) \
					or cp > 0x10ffff or (cp >= 0xd800 and cp <= 0xdfff):
				fail(what + " is not valid UTF-8")
				return ""
			i += l
		return b.get_string_from_utf8()


static func _read_pose(r, what: String) -> Dictionary:
	var mask = r.u8(what + " mask")
	var nt = r.u8(what + " ntrackers")
	if r.err != "":
		return {}
	if mask > 7 or nt > MAX_TRACKERS:
		r.fail(what + ": mask %d / ntrackers %d out of range" % [mask, nt])
		return {}
	var root = [r.i32(what + " root"), r.i32(what + " root"), r.i32(what + " root")]
	var root_rot = r.u32(what + " root_rot")
	var bones = []
	for b in range(bone_count(mask, nt)):
		var p = [r.i16(what + " bone"), r.i16(what + " bone"), r.i16(what + " bone")]
		var rot = r.u32(what + " bone rot")
		bones.append({
			"pos": p, "rot": rot,
			"position": Vector3(dequant_mm(p[0]), dequant_mm(p[1]), dequant_mm(p[2])),
			"quat": quat_unpack(rot),
		})
	return {
		"mask": mask, "ntrackers": nt, "root": root, "root_rot": root_rot, "bones": bones,
		"root_pos": Vector3(dequant_mm(root[0]), dequant_mm(root[1]), dequant_mm(root[2])),
		"root_quat": quat_unpack(root_rot),
	}


# A compact pose (version 2): the root relative to base cell (bx, bz) of region_size metres, or
# wide (world millimetres); bones as three 10-bit integers of 4 mm. Same Dictionary as _read_pose.
static func _read_pose2(r, what: String, rs: float, bx: int, bz: int) -> Dictionary:
	var shape = r.u8(what + " shape")
	if r.err != "":
		return {}
	var mask = shape & 7
	var nt = (shape >> 3) & 15
	if nt > MAX_TRACKERS:
		r.fail(what + ": ntrackers %d out of range" % nt)
		return {}
	var root
	if shape & POSE2_WIDE:
		root = [r.i32(what + " root"), r.i32(what + " root"), r.i32(what + " root")]
	else:
		var dx = r.u8(what + " cell dx")
		var dz = r.u8(what + " cell dz")
		if dx >= 128:
			dx -= 256
		if dz >= 128:
			dz -= 256
		var fx = r.u16(what + " x")
		var fz = r.u16(what + " z")
		var y = r.i16(what + " y")
		var cell_mm = rs * 1000.0
		root = [int(round((bx + dx + fx / 65536.0) * cell_mm)), y,
			int(round((bz + dz + fz / 65536.0) * cell_mm))]
	var root_rot = r.u32(what + " root_rot")
	var bones = []
	for b in range(bone_count(mask, nt)):
		var v = r.u32(what + " bone")
		var p = []
		for shift in [20, 10, 0]:
			var q = (v >> shift) & 0x3ff
			if q & 0x200:
				q -= 0x400
			p.append(q * 4)
		var rot = r.u32(what + " bone rot")
		bones.append({
			"pos": p, "rot": rot,
			"position": Vector3(dequant_mm(p[0]), dequant_mm(p[1]), dequant_mm(p[2])),
			"quat": quat_unpack(rot),
		})
	return {
		"mask": mask, "ntrackers": nt, "root": root, "root_rot": root_rot, "bones": bones,
		"root_pos": Vector3(dequant_mm(root[0]), dequant_mm(root[1]), dequant_mm(root[2])),
		"root_quat": quat_unpack(root_rot),
	}


# The decoding state of one connection (see the top of this file).
static func new_decode_state() -> Dictionary:
	return {"version": 1, "region_size": 0.0, "slots": {}}


static func _read_entity(r, what: String) -> Dictionary:
	var e = {}
	e.id = r.u64(what + " id")
	e.type = r.u16(what + " type")
	e.owner = r.u64(what + " owner")
	e.parent = r.u64(what + " parent")
	e.pos_mm = [r.i32(what + " pos"), r.i32(what + " pos"), r.i32(what + " pos")]
	e.rot_packed = r.u32(what + " rot")
	e.scale = Vector3(r.f32(what + " scale"), r.f32(what + " scale"), r.f32(what + " scale"))
	e.hp = r.i32(what + " hp")
	e.count = r.u32(what + " count")
	var nprops = r.u8(what + " nprops")
	if r.err == "" and nprops > MAX_PROPS:
		r.fail(what + ": %d properties (at most %d)" % [nprops, MAX_PROPS])
	var props = []
	for i in range(nprops):
		if r.err != "":
			break
		var key = r.u16(what + " prop key")
		var t = r.u8(what + " prop type")
		var v = null
		match t:
			PROP_INT:
				v = r.i64(what + " prop value")
			PROP_FLOAT:
				v = r.f64(what + " prop value")
			PROP_STRING:
				v = r.text(true, 1024, what + " prop value")
			PROP_REF:
				v = r.u64(what + " prop value")
			_:
				r.fail(what + ": unknown property type %d" % t)
		props.append({"key": key, "type": t, "value": v})
	e.props = props
	e.pos = Vector3(dequant_mm(e.pos_mm[0]), dequant_mm(e.pos_mm[1]), dequant_mm(e.pos_mm[2]))
	e.rot = quat_unpack(e.rot_packed)
	return e


# Decodes one body. `r` is positioned at the body start with r.end = body end.
static func _decode_body(type: int, r, st = null) -> Dictionary:
	var m = {"type": type, "name": msg_name(type)}
	match type:
		MSG_HELLO:
			m.req = r.u32("req")
			m.version = r.u16("version")
			m.client = r.text(false, CLIENT_NAME_MAX, "client")
		MSG_REGISTER, MSG_LOGIN:
			m.req = r.u32("req")
			m.user = r.text(false, 255, "name")
			m.password = r.text(false, 255, "password")
		MSG_RESUME:
			m.req = r.u32("req")
			m.token = r.bytes(TOKEN_LEN, "token")
		MSG_JOIN, MSG_LEAVE, MSG_LOGOUT, MSG_OK:
			m.req = r.u32("req")
		MSG_ACTION:
			m.req = r.u32("req")
			m.seq = r.u64("seq")
			m.action = r.u8("action")
			m.kind = r.u16("kind")
			m.target = r.u64("target")
			m.dest = r.u64("dest")
			m.count = r.u32("count")
			m.pos = Vector3(r.f32("pos"), r.f32("pos"), r.f32("pos"))
			m.rot = Quat(r.f32("rot"), r.f32("rot"), r.f32("rot"), r.f32("rot"))
			m.scale = Vector3(r.f32("scale"), r.f32("scale"), r.f32("scale"))
		MSG_POSE:
			m.pose = _read_pose(r, "pose")
		MSG_ACK:
			m.snapshot = r.u32("snapshot")
		MSG_CHAT:
			m.req = r.u32("req")
			m.text = r.text(true, TEXT_MAX, "text")
		MSG_PING:
			m.req = r.u32("req")
			m.client_time = r.u64("client_time")
		MSG_BYE, MSG_SERVER_BYE:
			m.reason = r.u16("reason")
			m.text = r.text(true, TEXT_MAX, "text")
		MSG_WELCOME:
			m.req = r.u32("req")
			m.version = r.u16("version")
			m.tick_hz = r.u16("tick_hz")
			m.pose_hz = r.u16("pose_hz")
			m.server_time_us = r.u64("server_time_us")
			m.max_message = r.u32("max_message")
			m.server_name = r.text(false, 255, "server_name")
		MSG_SESSION:
			m.req = r.u32("req")
			m.token = r.bytes(TOKEN_LEN, "token")
			m.account = r.u64("account")
			m.avatar = r.u64("avatar")
			m.role = r.u8("role")
			m.last_seq = r.u64("last_seq")
			m.expires_in_s = r.u32("expires_in_s")
			m.resumed = r.u8("resumed") != 0
		MSG_ERROR:
			m.req = r.u32("req")
			m.code = r.i32("code")
			m.text = r.text(true, TEXT_MAX, "text")
		MSG_JOINED:
			m.req = r.u32("req")
			m.region_size = r.f32("region_size")
			m.interest_radius = r.f32("interest_radius")
			var types = []
			var n = r.u16("ntypes")
			for i in range(n):
				if r.err != "":
					break
				var id = r.u16("type %d id" % i)
				var kind = r.u8("type %d kind" % i)
				types.append({"id": id, "kind": kind, "name": r.text(false, 255, "type %d name" % i)})
			m.types = types
			var recipes = []
			n = r.u16("nrecipes")
			for i in range(n):
				if r.err != "":
					break
				var id = r.u16("recipe %d id" % i)
				recipes.append({"id": id, "name": r.text(false, 255, "recipe %d name" % i)})
			m.recipes = recipes
			var keys = []
			n = r.u16("nkeys")
			for i in range(n):
				if r.err != "":
					break
				keys.append(r.text(false, 255, "key %d" % i))
			m.keys = keys
		MSG_APPLIED:
			m.req = r.u32("req")
			m.seq = r.u64("seq")
			m.code = r.i32("code")
			m.entity = r.u64("entity")
			m.count = r.u32("count")
			m.frame = r.u64("frame")
			m.replayed = r.u8("replayed") != 0
		MSG_DURABLE:
			m.frame = r.u64("frame")
			m.status = r.i32("status")
			var n = r.u16("n")
			if r.err == "" and r.left() != 8 * n:
				r.fail("n = %d but %d bytes of seqs" % [n, r.left()])
			var seqs = []
			for i in range(n):
				if r.err != "":
					break
				seqs.append(r.u64("seq"))
			m.seqs = seqs
		MSG_SNAPSHOT:
			m.id = r.u32("id")
			m.base = r.u32("base")
			m.frame = r.u64("frame")
			m.flags = r.u8("flags")
			var n = r.u16("n")
			var ents = []
			for i in range(n):
				if r.err != "":
					break
				ents.append(_read_entity(r, "entity %d" % i))
			m.entities = ents
			n = r.u16("nremoved")
			var removed = []
			for i in range(n):
				if r.err != "":
					break
				removed.append(r.u64("removed"))
			m.removed = removed
		MSG_POSES:
			m.tick = r.u32("tick")
			var v2 = st != null and st.version >= 2
			if v2:
				if st.region_size <= 0:
					r.fail("version 2 POSES before JOINED")
				m.base_x = r.i32("base cell x")
				m.base_z = r.i32("base cell z")
			var n = r.u16("n")
			var entries = []
			for i in range(n):
				if r.err != "":
					break
				if v2:
					var slot = r.u16("slot %d" % i)
					var av = 0
					if slot & 0x8000:
						av = r.u64("avatar %d" % i)
						st.slots[slot & 0x7fff] = av
					elif st.slots.has(slot):
						av = st.slots[slot]
					elif r.err == "":
						r.fail("slot %d was never bound" % slot)
						break
					entries.append({"avatar": av,
						"pose": _read_pose2(r, "pose %d" % i, st.region_size, m.base_x, m.base_z)})
				else:
					var av = r.u64("avatar %d" % i)
					entries.append({"avatar": av, "pose": _read_pose(r, "pose %d" % i)})
			m.entries = entries
		MSG_EVENT:
			m.kind = r.u8("kind")
			m.from = r.u64("from_account")
			m.text = r.text(true, TEXT_MAX, "text")
		MSG_PONG:
			m.req = r.u32("req")
			m.client_time = r.u64("client_time")
			m.server_time_us = r.u64("server_time_us")
		_:
			r.fail("unknown message type")
	return m


# Decodes every protocol message in `data` (one WebSocket message).
# st: the connection's decoding state (new_decode_state()), or null for version 1 POSES.
static func decode_messages(data: PoolByteArray, st = null) -> Dictionary:
	var out = []
	var r = Reader.new(data)
	var total = data.size()
	var off = 0
	if total == 0:
		return {"messages": out, "error": "empty WebSocket message"}
	while off < total:
		if total - off < HEADER_SIZE:
			return {"messages": out, "error": "truncated header (%d bytes left)" % (total - off)}
		r.buf.seek(off)
		var type = r.buf.get_u8()
		var length = r.buf.get_u16()
		var name = msg_name(type)
		if not LAYOUTS.has(type):
			return {"messages": out, "error": "%s: unknown message type" % name}
		if off + HEADER_SIZE + length > total:
			return {"messages": out,
				"error": "%s: length %d runs past the WebSocket message" % [name, length]}
		var lay = LAYOUTS[type]
		if (lay[1] == -1 and length != lay[0]) or (lay[1] != -1 and (length < lay[0] or length > lay[1])):
			return {"messages": out, "error": "%s: body of %d bytes (layout %s)" % [name, length, str(lay)]}
		r.end = off + HEADER_SIZE + length
		r.err = ""
		var m = _decode_body(type, r, st)
		if r.err == "" and r.pos() != r.end:
			r.err = "%d trailing bytes" % (r.end - r.pos())
		if r.err == "" and st != null and type == MSG_WELCOME:
			if m.version < VERSION_MIN or m.version > VERSION:
				r.err = "version %d" % m.version
			st.version = m.version
		if r.err == "" and st != null and type == MSG_JOINED:
			st.region_size = m.region_size
		if r.err != "":
			return {"messages": out, "error": "%s: %s" % [name, r.err]}
		out.append(m)
		off = r.end
	return {"messages": out, "error": ""}


# Decodes exactly one message (convenience for tests). Returns {} and pushes nothing on error;
# use decode_messages to get the reason.
static func decode_one(data: PoolByteArray) -> Dictionary:
	var d = decode_messages(data)
	if d.error != "" or d.messages.size() != 1:
		return {}
	return d.messages[0]
