# Codec self-test of addons/otherworld/protocol.gd: golden bytes (computed from docs/protocol.md
# independently), round trips of every message, malformed input, quaternion accuracy.
# Prints OTHERWORLD_GODOT_CODEC_OK and exits 0, or prints FAIL lines and exits 1.
extends SceneTree

const Proto = preload("res://addons/otherworld/protocol.gd")

var failures = 0
var checks = 0


func check(cond: bool, what: String) -> void:
	checks += 1
	if not cond:
		failures += 1
		print("FAIL: ", what)


func hex(b: PoolByteArray) -> String:
	var s = ""
	for x in b:
		s += "%02x" % x
	return s


func unhex(s: String) -> PoolByteArray:
	var out = PoolByteArray()
	for i in range(0, s.length(), 2):
		out.append(("0x" + s.substr(i, 2)).hex_to_int())
	return out


func near(a: float, b: float, eps: float) -> bool:
	return abs(a - b) <= eps


func _initialize() -> void:
	golden()
	roundtrips()
	malformed()
	quats()
	if failures == 0:
		print("codec: %d checks passed" % checks)
		print("OTHERWORLD_GODOT_CODEC_OK")
		quit(0)
	else:
		print("codec: %d of %d checks failed" % [failures, checks])
		quit(1)


func golden() -> void:
	check(hex(Proto.encode_hello(7, "godot")) == "010c0007000000020005676f646f74", "HELLO golden")
	check(hex(Proto.encode_hello(7, "godot", 1)) == "010c0007000000010005676f646f74", "HELLO version 1 golden")
	var act = Proto.encode_action(1, 2, {"action": 3, "kind": 9, "target": 0x0102030405060708,
		"count": 5, "pos": Vector3(1.5, -2, 0.25)})
	check(hex(act) == "084b0001000000020000000000000003090008070605040302010000000000000000050000000000c03f000000c00000803e0000000000000000000000000000803f0000803f0000803f0000803f",
		"ACTION golden: " + hex(act))
	var pose = Proto.make_pose(Vector3(1, -2, 3), Quat(0, 0, 0, 1), [Vector3(0, 1.7, -0.005), Quat(0, 0, 0, 1)])
	var pb = Proto.encode_pose(pose)
	check(hex(pb) == "091c000100e803000030f8ffffb80b0000000000c00000a406fbff000000c0", "POSE golden: " + hex(pb))
	check(Proto.quat_pack(Quat(0, 0, 0, 1)) == 0xC0000000, "identity packs to 0xC0000000")
	var d = Proto.decode_messages(unhex("889000050000000400000063000000000000000101002a00000000000000070003000000000000000000000000000000b80b00000000000048f4ffff000000c00000803f000000400000003ff40100000100000004000001f9ffffffffffffff0100020000000000000440020003060068c3a96c6c6f030004393000000000000002000a000000000000000b00000000000000"))
	check(d.error == "" and d.messages.size() == 1, "SNAPSHOT golden decodes: " + d.error)
	if d.messages.size() == 1:
		var m = d.messages[0]
		check(m.id == 5 and m.base == 4 and m.frame == 99 and m.flags == 1, "SNAPSHOT header")
		check(m.entities.size() == 1 and m.removed == [10, 11], "SNAPSHOT counts")
		var e = m.entities[0]
		check(e.id == 42 and e.type == 7 and e.owner == 3 and e.parent == 0, "entity ids")
		check(e.pos_mm == [3000, 0, -3000] and e.pos == Vector3(3, 0, -3), "entity pos")
		check(e.rot_packed == 0xC0000000 and e.rot.is_equal_approx(Quat(0, 0, 0, 1)), "entity rot")
		check(e.scale == Vector3(1, 2, 0.5) and e.hp == 500 and e.count == 1, "entity scale/hp/count")
		check(e.props.size() == 4, "entity props")
		if e.props.size() == 4:
			check(e.props[0].type == 1 and e.props[0].value == -7, "prop int")
			check(e.props[1].type == 2 and e.props[1].value == 2.5, "prop float")
			check(e.props[2].type == 3 and e.props[2].value == "héllo", "prop string")
			check(e.props[3].type == 4 and e.props[3].value == 12345 and e.props[3].key == 3, "prop ref")
	var two = unhex("86250003000000040000000000000007fcffff0900000000000000000000004d0000000000000001" +
		"871e004d0000000000000000000000020004000000000000000500000000000000")
	d = Proto.decode_messages(two)
	check(d.error == "" and d.messages.size() == 2, "two messages in one WebSocket message")
	if d.messages.size() == 2:
		var a = d.messages[0]
		check(a.type == Proto.MSG_APPLIED and a.req == 3 and a.seq == 4 and a.code == Proto.E_TOO_FAR
			and a.entity == 9 and a.count == 0 and a.frame == 77 and a.replayed, "APPLIED golden")
		var du = d.messages[1]
		check(du.type == Proto.MSG_DURABLE and du.frame == 77 and du.status == 0 and du.seqs == [4, 5], "DURABLE golden")


func rt(msg: PoolByteArray, what: String) -> Dictionary:
	check(msg.size() >= 3, what + " encodes")
	var d = Proto.decode_messages(msg)
	check(d.error == "" and d.messages.size() == 1, what + " decodes: " + d.error)
	if d.messages.size() != 1:
		return {"type": -1}
	return d.messages[0]


func roundtrips() -> void:
	var m = rt(Proto.encode_register(9, "alice", "password1"), "REGISTER")
	check(m.type == Proto.MSG_REGISTER and m.req == 9 and m.user == "alice" and m.password == "password1", "REGISTER fields")
	m = rt(Proto.encode_login(10, "bob_1.x-y", "p" .repeat(128)), "LOGIN")
	check(m.type == Proto.MSG_LOGIN and m.password.length() == 128, "LOGIN fields")
	var tok = PoolByteArray()
	for i in range(32):
		tok.append(i * 7)
	m = rt(Proto.encode_resume(11, tok), "RESUME")
	check(m.token == tok, "RESUME token")
	for t in [Proto.MSG_JOIN, Proto.MSG_LEAVE, Proto.MSG_LOGOUT, Proto.MSG_OK]:
		m = rt(Proto.encode_req_only(t, 0xfffffffe), Proto.msg_name(t))
		check(m.type == t and m.req == 0xfffffffe, Proto.msg_name(t) + " req")
	m = rt(Proto.encode_action(4, 0x123456789abc, {"action": Proto.ACT_BUILD, "kind": 65535, "target": 1,
		"dest": 2, "count": 0xffffffff, "pos": Vector3(-1, 2, -3), "rot": Quat(0.5, 0.5, 0.5, 0.5),
		"scale": Vector3(2, 3, 4)}), "ACTION")
	check(m.seq == 0x123456789abc and m.action == 3 and m.kind == 65535 and m.count == 0xffffffff
		and m.pos == Vector3(-1, 2, -3) and m.rot == Quat(0.5, 0.5, 0.5, 0.5) and m.scale == Vector3(2, 3, 4), "ACTION fields")
	var pose = Proto.make_pose(Vector3(100.5, 1.25, -2000), Quat(Vector3.UP, 1.0),
		[Vector3(0, 1.7, 0), Quat(Vector3.RIGHT, 0.3)], null, [Vector3(0.3, 1.1, -0.4), Quat(0, 0, 0, 1)],
		[[Vector3(0, 0.1, 0), Quat(Vector3.FORWARD, -2.0)], [Vector3(-32.767, 32.767, 0), Quat(0, 1, 0, 0)]])
	check(pose.mask == 5 and pose.ntrackers == 2 and pose.bones.size() == 4, "make_pose bones")
	m = rt(Proto.encode_pose(pose), "POSE")
	if m.type == Proto.MSG_POSE:
		var p = m.pose
		check(p.root == [100500, 1250, -2000000] and p.bones.size() == 4, "POSE root")
		check(p.root_quat.is_equal_approx(p.root_quat) and abs(p.root_quat.dot(Quat(Vector3.UP, 1.0))) > 0.99999, "POSE root rot")
		check(p.bones[3].pos == [-32767, 32767, 0], "POSE tracker pos")
		check(p.bones[1].position.is_equal_approx(Vector3(0.3, 1.1, -0.4)), "POSE right hand")
	check(Proto.make_pose(Vector3(), Quat(), [Vector3(0, 33, 0), Quat()]).empty(), "bone beyond 32.767 m refused")
	check(Proto.encode_pose({}).size() == 0, "empty pose refused")
	m = rt(Proto.encode_ack(0xffffffff), "ACK")
	check(m.snapshot == 0xffffffff, "ACK field")
	m = rt(Proto.encode_chat(12, "héllo wörld ✓"), "CHAT")
	check(m.text == "héllo wörld ✓", "CHAT text")
	check(Proto.encode_chat(1, "x".repeat(513)).size() == 0, "CHAT > 512 bytes refused")
	check(Proto.encode_chat(1, "x".repeat(512)).size() == 3 + 6 + 512, "CHAT 512 bytes accepted")
	m = rt(Proto.encode_ping(13, 0x7fffffffffffffff), "PING")
	check(m.client_time == 0x7fffffffffffffff, "PING client_time")
	m = rt(Proto.encode_bye(Proto.BYE_NORMAL, "bye"), "BYE")
	check(m.reason == 1 and m.text == "bye", "BYE fields")
	m = rt(Proto.encode_welcome(1, 30, 30, 123456789, 4096, "otherworld"), "WELCOME")
	check(m.version == Proto.VERSION and m.tick_hz == 30 and m.max_message == 4096 and m.server_name == "otherworld", "WELCOME fields")
	m = rt(Proto.encode_error(5, Proto.E_NAME_TAKEN, "taken"), "ERROR")
	check(m.code == -1035 and m.text == "taken" and Proto.error_name(m.code) == "OW_E_NAME_TAKEN", "ERROR fields")
	var ent = {"id": 1 << 40, "type": 3, "owner": 2, "parent": 5, "pos_mm": [-1, 2147483647, -2147483648],
		"rot_packed": Proto.quat_pack(Quat(0, 1, 0, 0)), "scale": Vector3(1, 1, 1), "hp": -5, "count": 100,
		"props": [{"key": 0, "type": Proto.PROP_STRING, "value": ""}]}
	m = rt(Proto.encode_snapshot(1, 0, 2, 0, [ent, ent], [3]), "SNAPSHOT")
	check(m.entities.size() == 2 and m.entities[1].pos_mm == ent.pos_mm and m.entities[1].id == 1 << 40
		and m.entities[0].hp == -5 and m.removed == [3], "SNAPSHOT fields")
	m = rt(Proto.encode_poses(9, [{"avatar": 4, "pose": pose}, {"avatar": 5, "pose": Proto.make_pose(Vector3(), Quat())}]), "POSES")
	check(m.tick == 9 and m.entries.size() == 2 and m.entries[0].avatar == 4 and m.entries[1].pose.bones.size() == 0, "POSES fields")
	# Version 2: slots bound with their avatar, then named alone; roots within 2 mm on X and Z
	# (256 m cells), exact height; bones to 4 mm; a slot never bound is refused.
	var st = Proto.new_decode_state()
	var d2 = Proto.decode_messages(Proto.encode_welcome(1, 30, 30, 1, 4096, "v2"), st)
	check(d2.error == "" and st.version == 2, "WELCOME sets the state's version: " + d2.error)
	st.region_size = 256.0  # as JOINED would
	var p2 = {"mask": 1, "ntrackers": 0, "root": [-1234567, 850, 98765], "root_rot": pose.root_rot,
		"bones": [{"pos": [5, 1650, -3], "rot": pose.root_rot}]}
	d2 = Proto.decode_messages(Proto.encode_poses2(3, -5, 0, 256.0,
		[{"slot": 0, "avatar": 40, "pose": p2}, {"slot": 1, "avatar": 41, "pose": p2}]), st)
	check(d2.error == "" and d2.messages.size() == 1, "POSES v2 decodes: " + d2.error)
	if d2.messages.size() == 1:
		var e2 = d2.messages[0].entries
		check(e2.size() == 2 and e2[0].avatar == 40 and e2[1].avatar == 41, "POSES v2 slots bound")
		var q2 = e2[0].pose
		check(abs(q2.root[0] + 1234567) <= 2 and q2.root[1] == 850 and abs(q2.root[2] - 98765) <= 2,
			"POSES v2 root %s" % str(q2.root))
		check(q2.bones[0].pos == [4, 1652, -4] and q2.root_rot == p2.root_rot, "POSES v2 bones %s" % str(q2.bones[0].pos))
	d2 = Proto.decode_messages(Proto.encode_poses2(4, -5, 0, 256.0, [{"slot": 1, "avatar": 0, "pose": p2}]), st)
	check(d2.error == "" and d2.messages[0].entries[0].avatar == 41, "POSES v2 slot named alone: " + d2.error)
	d2 = Proto.decode_messages(Proto.encode_poses2(5, -5, 0, 256.0, [{"slot": 7, "avatar": 0, "pose": p2}]), st)
	check(d2.error.find("never bound") >= 0, "POSES v2 unbound slot refused: " + d2.error)
	m = rt(Proto.encode_durable(1, -28, []), "DURABLE empty")
	check(m.status == -28 and m.seqs.size() == 0, "DURABLE fields")
	check(Proto.encode_register(1, "ab", "password1").size() == 0, "name too short refused")
	check(Proto.encode_register(1, "abc", "short").size() == 0, "password too short refused")
	check(Proto.encode_hello(1, "x".repeat(65)).size() == 0, "client name > 64 refused")


func bad(hexs: String, what: String, expect: String) -> void:
	var d = Proto.decode_messages(unhex(hexs))
	check(d.error != "" and d.error.find(expect) >= 0, what + " -> '" + d.error + "'")


func malformed() -> void:
	bad("82", "truncated header", "truncated header")
	bad("820400010000", "length past end", "runs past")
	bad("8205000100000000", "OK with 5 bytes", "OK: body of 5")
	bad("ff0000", "unknown type", "unknown message type")
	bad("8c05000100020061", "SERVER_BYE text past body", "body too short at text")
	bad("8c0700010002006162ff", "trailing bytes after a string", "trailing")
	bad("8c060001000200c328", "invalid UTF-8", "UTF-8")
	bad("8c0600010002006100", "NUL in a string", "UTF-8")
	bad("870f00" + "0000000000000000" + "00000000" + "0100" + "00", "DURABLE n vs bytes", "DURABLE")
	var ok = Proto.encode_ok(1)
	var both = PoolByteArray(ok)
	both.append_array(unhex("8204"))
	var d = Proto.decode_messages(both)
	check(d.messages.size() == 1 and d.error != "", "good message then a truncated one")


func quats() -> void:
	var rng = RandomNumberGenerator.new()
	rng.seed = 12345
	var worst = 0.0
	for i in range(2000):
		var q = Quat(rng.randfn(), rng.randfn(), rng.randfn(), rng.randfn()).normalized()
		var u = Proto.quat_unpack(Proto.quat_pack(q))
		var dot = min(1.0, abs(q.dot(u)))
		var deg = rad2deg(2.0 * acos(dot))
		worst = max(worst, deg)
	check(worst < 0.25, "packed quaternion error %f degrees" % worst)
	var q2 = Quat(0, 0, -1, 0)
	check(Proto.quat_unpack(Proto.quat_pack(q2)).is_equal_approx(Quat(0, 0, 1, 0)), "negative largest component flips sign")
	print("codec: worst quaternion error %.4f degrees" % worst)
