# Headless integration test of the otherworld Godot addon against the real server.
#
# Run by tests/godot/run.sh, which starts the server and the companion client (a C program using
# clients/c) and passes, in the environment:
#   OW_URL                 ws://127.0.0.1:PORT/ws
#   OW_COMPANION_ACCOUNT   the companion's account id
#   OW_COMPANION_AVATAR    the companion's avatar id
#   OW_COMPANION_WALL      the id of the wall the companion built
#   OW_TEST_TIMEOUT_S      overall deadline (default 60)
#
# Steps: HELLO, REGISTER a fresh account, LOGIN, PING, JOIN; harvest the tree at (3, 0, 3), craft
# planks, build a wall, each APPLIED code 0 then DURABLE; see the own wall (and the tree's lost hp)
# replicated; see the companion's pose in POSES and its wall in the snapshots; chat both ways (the
# companion answers once it has seen this client's pose and wall); check refusals (APPLIED with a
# reason code, ERROR STATE); drop the connection with a craft sent and a harvest still queued,
# reconnect, RESUME, JOIN: the client re-sends what is not durable and each action is applied
# exactly once; re-send the build with its old seq and get the original result flagged replayed;
# LOGOUT. Prints OTHERWORLD_GODOT_OK and exits 0, or prints
# "OTHERWORLD_GODOT_FAIL: <reason>" and exits 1.
extends SceneTree

const Client = preload("res://addons/otherworld/client.gd")
const Proto = preload("res://addons/otherworld/protocol.gd")

# The companion streams this pose (tests/godot/companion.c).
const COMPANION_ROOT = Vector3(1.25, 0.0, 2.75)
const COMPANION_HEAD_Y = 1.7
# This client's pose and wall.
const MY_ROOT = Vector3(0.5, 0.0, 2.0)
const MY_WALL_POS = Vector3(-1.5, 0.0, 4.0)
const TREE_POS = Vector3(3, 0, 3)
const ROCK_POS = Vector3(-3, 0, 3)

var ow
var url = ""
var step = "start"
var deadline_ms = 0
var done = false
var t0 = 0

var replies = {}        # req -> reply (OK, SESSION, JOINED, APPLIED, PONG, WELCOME, ERROR)
var durables = {}       # seq -> status
var applied_by_seq = {} # seq -> APPLIED
var events = []
var seen_poses = {}     # avatar -> latest pose
var byes = []
var full_snapshots = 0
var closed = false
var last_pose_ms = 0

var account = 0
var avatar = 0
var comp_account = 0
var comp_avatar = 0
var comp_wall = 0


func log_step(s: String) -> void:
	step = s
	print("[%6.3f] %s" % [(OS.get_ticks_msec() - t0) / 1000.0, s])


func fail(reason: String) -> void:
	if done:
		return
	done = true
	print("OTHERWORLD_GODOT_FAIL: ", reason, " (step: ", step, ")")
	quit(1)


func _initialize() -> void:
	t0 = OS.get_ticks_msec()
	Engine.target_fps = 200   # headless: do not spin the CPU
	url = OS.get_environment("OW_URL")
	var timeout_s = OS.get_environment("OW_TEST_TIMEOUT_S")
	deadline_ms = t0 + (int(timeout_s) if timeout_s != "" else 60) * 1000
	comp_account = int(OS.get_environment("OW_COMPANION_ACCOUNT"))
	comp_avatar = int(OS.get_environment("OW_COMPANION_AVATAR"))
	comp_wall = int(OS.get_environment("OW_COMPANION_WALL"))
	if url == "" or comp_account == 0 or comp_avatar == 0 or comp_wall == 0:
		fail("OW_URL and OW_COMPANION_{ACCOUNT,AVATAR,WALL} must be set")
		return
	ow = Client.new()
	ow.client_name = "otherworld-godot-test"
	ow.verbose = true
	root.add_child(ow)
	ow.connect("welcome", self, "_on_reply")
	ow.connect("session", self, "_on_reply")
	ow.connect("joined", self, "_on_reply")
	ow.connect("applied", self, "_on_reply")
	ow.connect("pong", self, "_on_reply")
	ow.connect("ok", self, "_on_ok")
	ow.connect("error", self, "_on_error")
	ow.connect("durable", self, "_on_durable")
	ow.connect("event", self, "_on_event")
	ow.connect("poses", self, "_on_poses")
	ow.connect("bye", self, "_on_bye")
	ow.connect("disconnected", self, "_on_disconnected")
	ow.connect("snapshot_applied", self, "_on_snapshot")
	_main()


func _idle(_delta: float) -> bool:
	if done:
		return false
	if OS.get_ticks_msec() > deadline_ms:
		fail("timeout")
		return false
	# Stream this client's pose at 20 Hz while in the world.
	if ow != null and ow.in_world and OS.get_ticks_msec() - last_pose_ms >= 50:
		last_pose_ms = OS.get_ticks_msec()
		var sway = sin(last_pose_ms / 500.0) * 0.05
		ow.send_pose(MY_ROOT, Quat(Vector3.UP, deg2rad(30)),
			[Vector3(0, 1.6, 0.05), Quat(Vector3.RIGHT, sway)],
			[Vector3(-0.3, 1.1, -0.3 + sway), Quat(0, 0, 0, 1)],
			[Vector3(0.3, 1.1, -0.3), Quat(0, 0, 0, 1)])
	return false


# ---- recording ------------------------------------------------------------------------------

func _on_reply(m) -> void:
	if m.has("req"):
		replies[m.req] = m
	if m.type == Proto.MSG_APPLIED:
		applied_by_seq[m.seq] = m


func _on_ok(req) -> void:
	replies[req] = {"type": Proto.MSG_OK, "req": req}


func _on_error(m) -> void:
	print("  error: ", Proto.error_name(m.code), " req=", m.req, " ", m.text)
	if m.req != 0:
		replies[m.req] = m
	elif m.code == Proto.E_PROTO:
		fail("malformed message from the server: " + m.text)


func _on_durable(m) -> void:
	for s in m.seqs:
		durables[s] = m.status


func _on_event(m) -> void:
	events.append(m)


func _on_poses(_tick, entries) -> void:
	for en in entries:
		seen_poses[en.avatar] = en.pose


func _on_bye(reason, text) -> void:
	print("  server bye: reason=%d '%s'" % [reason, text])
	byes.append([reason, text])


func _on_disconnected(clean) -> void:
	print("  disconnected (clean: %s)" % str(clean))
	closed = true


func _on_snapshot(_id, base, _frame) -> void:
	if base == 0:
		full_snapshots += 1


# ---- waiting --------------------------------------------------------------------------------

# Waits (yielding frames) until call(cond, args) is true. Returns true, or false after fail().
func until(cond: String, args: Array = []) -> bool:
	yield(self, "idle_frame")
	while not done:
		if callv(cond, args):
			return true
		yield(self, "idle_frame")
	return false


func has_key(d: Dictionary, k) -> bool:
	return d.has(k)


func is_true(obj: Object, prop: String) -> bool:
	return obj.get(prop)


func has_entity(id: int) -> bool:
	return ow.entities.has(id)


func has_event_from(from: int, contains: String) -> bool:
	for e in events:
		if e.kind == Proto.EVENT_CHAT and e.from == from and e.text.find(contains) >= 0:
			return true
	return false


func entity_hp_is(id: int, hp: int) -> bool:
	return ow.entities.has(id) and ow.entities[id].hp == hp


func count_of_type_is(tname: String, owner: int, n: int) -> bool:
	var total = 0
	for e in ow.entities_of_type(tname):
		if e.owner == owner:
			total += e.count
	return total == n


# Sends nothing; waits for the reply to req and returns it (or {} after a failure).
func reply(req: int, what: String) -> Dictionary:
	if req <= 0:
		yield(self, "idle_frame")
		fail("%s: request not sent (%d %s)" % [what, req, Proto.error_name(req)])
		return {}
	var ok = yield(until("has_key", [replies, req]), "completed")
	if not ok:
		return {}
	return replies[req]


# Waits for APPLIED code 0 and DURABLE of an action; returns the APPLIED.
func action_ok(sent: Dictionary, what: String) -> Dictionary:
	var m = yield(reply(sent.req, what), "completed")
	if done:
		return {}
	if m.type != Proto.MSG_APPLIED:
		fail("%s: expected APPLIED, got %s %s %s" % [what, m.name, Proto.error_name(m.get("code", 0)), m.get("text", "")])
		return {}
	if m.code != 0 or m.seq != sent.seq or m.replayed:
		fail("%s: APPLIED code %s seq %d (sent %d) replayed %s" % [what, Proto.error_name(m.code), m.seq, sent.seq, m.replayed])
		return {}
	print("  %s applied: seq=%d entity=%d count=%d frame=%d" % [what, m.seq, m.entity, m.count, m.frame])
	if not (yield(until("has_key", [durables, sent.seq]), "completed")):
		return {}
	if durables[sent.seq] != 0:
		fail("%s: DURABLE status %d" % [what, durables[sent.seq]])
		return {}
	print("  %s durable" % what)
	return m


# ---- the scenario ---------------------------------------------------------------------------

func _main() -> void:
	# Connect, HELLO.
	log_step("connect " + url)
	var err = ow.connect_to_server(url)
	if err != OK:
		fail("connect_to_server: error %d" % err)
		return
	var m = yield(reply(ow.hello(), "HELLO"), "completed")
	if done: return
	if m.type != Proto.MSG_WELCOME or m.version != Proto.VERSION or m.max_message < 4096:
		fail("bad WELCOME: %s" % str(m))
		return
	print("  welcome: server=%s tick_hz=%d pose_hz=%d max_message=%d" % [m.server_name, m.tick_hz, m.pose_hz, m.max_message])

	# REGISTER a fresh account, LOGIN.
	var rng = RandomNumberGenerator.new()
	rng.randomize()
	var user = "godot_%08x" % (rng.randi() & 0x7fffffff)
	var password = "godot-password-%d" % rng.randi()
	log_step("register " + user)
	m = yield(reply(ow.register(user, password), "REGISTER"), "completed")
	if done: return
	if m.type != Proto.MSG_OK:
		fail("REGISTER: %s %s" % [Proto.error_name(m.get("code", 0)), m.get("text", "")])
		return
	m = yield(reply(ow.register(user, password), "REGISTER again"), "completed")
	if done: return
	if m.type != Proto.MSG_ERROR or m.code != Proto.E_NAME_TAKEN:
		fail("second REGISTER: expected ERROR OW_E_NAME_TAKEN, got %s" % str(m))
		return
	log_step("login")
	m = yield(reply(ow.login(user, "wrong-password"), "LOGIN wrong"), "completed")
	if done: return
	if m.type != Proto.MSG_ERROR or m.code != Proto.E_AUTH:
		fail("LOGIN with a wrong password: expected OW_E_AUTH, got %s" % str(m))
		return
	m = yield(reply(ow.login(user, password), "LOGIN"), "completed")
	if done: return
	if m.type != Proto.MSG_SESSION or m.resumed or m.token.size() != 32 or m.avatar == 0:
		fail("LOGIN: expected a fresh SESSION, got %s" % str(m))
		return
	account = m.account
	avatar = m.avatar
	print("  session: account=%d avatar=%d role=%d last_seq=%d expires_in_s=%d" % [account, avatar, m.role, m.last_seq, m.expires_in_s])

	log_step("ping")
	var ping_time = 0x0102030405060708
	m = yield(reply(ow.ping(ping_time), "PING"), "completed")
	if done: return
	if m.type != Proto.MSG_PONG or m.client_time != ping_time or m.server_time_us <= 0:
		fail("PONG: %s" % str(m))
		return

	# Actions before JOIN are refused with OW_E_STATE by the server; the client holds them back
	# until JOINED instead, so check STATE with CHAT.
	m = yield(reply(ow.chat("too early"), "CHAT before JOIN"), "completed")
	if done: return
	if m.type != Proto.MSG_ERROR or m.code != Proto.E_STATE:
		fail("CHAT before JOIN: expected OW_E_STATE, got %s" % str(m))
		return

	# JOIN: world description, then a full snapshot with this avatar and the tree.
	log_step("join")
	m = yield(reply(ow.join(), "JOIN"), "completed")
	if done: return
	if m.type != Proto.MSG_JOINED:
		fail("JOIN: %s" % str(m))
		return
	var wall_type = ow.type_id("wall")
	var tree_type = ow.type_id("tree")
	var planks = ow.recipe_id("planks")
	print("  joined: %d types, %d recipes, %d keys, region_size=%.0f interest_radius=%.0f" % [m.types.size(), m.recipes.size(), m.keys.size(), m.region_size, m.interest_radius])
	if wall_type < 0 or tree_type < 0 or planks < 0 or ow.type_kind(wall_type) != Proto.KIND_STRUCTURE:
		fail("JOINED lacks wall/tree/planks: %s" % str(m))
		return
	if not (yield(until("has_entity", [avatar]), "completed")): return
	print("  first snapshot: %d entities" % ow.entities.size())
	var tree = 0
	for e in ow.entities_of_type("tree"):
		if e.pos.distance_to(TREE_POS) < 0.01:
			tree = e.id
	if tree == 0:
		fail("no tree at (3, 0, 3) among %d entities" % ow.entities.size())
		return
	var tree_hp = ow.entities[tree].hp
	var me = ow.entities[avatar]
	if me.owner != account or ow.type_kind(me.type) != Proto.KIND_AVATAR:
		fail("own avatar entity: %s" % str(me))
		return

	# Harvest, craft, build.
	log_step("harvest tree %d (hp %d)" % [tree, tree_hp])
	var h = yield(action_ok(ow.harvest(tree), "harvest"), "completed")
	if done: return
	if h.count != 5:
		fail("harvest yielded %d (expected 5)" % h.count)
		return
	log_step("craft planks")
	var c = yield(action_ok(ow.craft(planks), "craft"), "completed")
	if done: return
	if c.count != 4:
		fail("craft made %d planks (expected 4)" % c.count)
		return
	log_step("build wall")
	var b_sent = ow.build(wall_type, MY_WALL_POS, Quat(Vector3.UP, deg2rad(45)))
	var b = yield(action_ok(b_sent, "build"), "completed")
	if done: return
	var wall = b.entity
	if wall == 0 or b.count != 1:
		fail("build: entity %d count %d" % [wall, b.count])
		return

	# The own wall, the tree's lost hp and the left-over wood come back in the snapshots.
	log_step("see own wall %d" % wall)
	if not (yield(until("has_entity", [wall]), "completed")): return
	var w = ow.entities[wall]
	if w.type != wall_type or w.owner != account or w.pos.distance_to(MY_WALL_POS) > 0.0015 \
			or abs(w.rot.dot(Quat(Vector3.UP, deg2rad(45)))) < 0.9999 or w.hp != 500:
		fail("own wall replicated wrongly: %s" % str(w))
		return
	print("  own wall: pos=%s hp=%d owner=%d" % [str(w.pos), w.hp, w.owner])
	if not (yield(until("entity_hp_is", [tree, tree_hp - 25]), "completed")): return
	if not (yield(until("count_of_type_is", ["wood", account, 3]), "completed")): return
	if not (yield(until("count_of_type_is", ["plank", account, 0]), "completed")): return
	print("  tree hp %d -> %d, 3 wood left, no planks" % [tree_hp, ow.entities[tree].hp])

	# The companion: its pose in POSES, its wall in the snapshots.
	log_step("see companion avatar %d pose" % comp_avatar)
	if not (yield(until("has_key", [seen_poses, comp_avatar]), "completed")): return
	var p = seen_poses[comp_avatar]
	# Version 2 poses: the root to 3.9 mm on X and Z (256 m cells), bones to 4 mm.
	if p.root_pos.distance_to(COMPANION_ROOT) > 0.003 or p.mask & Proto.MASK_HEAD == 0 \
			or abs(p.bones[0].position.y - COMPANION_HEAD_Y) > 0.0025 \
			or abs(p.root_quat.dot(Quat(Vector3.UP, deg2rad(90)))) < 0.9999:
		fail("companion pose: %s" % str(p))
		return
	print("  companion pose: root=%s head=%s" % [str(p.root_pos), str(p.bones[0].position)])
	log_step("see companion wall %d" % comp_wall)
	if not (yield(until("has_entity", [comp_wall]), "completed")): return
	var cw = ow.entities[comp_wall]
	if cw.type != wall_type or cw.owner != comp_account:
		fail("companion wall: %s" % str(cw))
		return
	print("  companion wall: pos=%s owner=%d" % [str(cw.pos), cw.owner])

	# Chat both ways: the companion says what it saw of this client.
	log_step("chat")
	var chat_text = "hello from godot, avatar %d" % avatar
	m = yield(reply(ow.chat(chat_text), "CHAT"), "completed")
	if done: return
	if m.type != Proto.MSG_OK:
		fail("CHAT: %s" % str(m))
		return
	if not (yield(until("has_event_from", [account, chat_text]), "completed")): return
	var expect = "seen avatar=%d wall=%d" % [avatar, wall]
	log_step("wait for the companion's '%s'" % expect)
	if not (yield(until("has_event_from", [comp_account, expect]), "completed")): return

	# Refusals: a failed action gets APPLIED with its reason; JOIN twice gets ERROR STATE.
	log_step("refusals")
	var bad = ow.harvest(987654321)
	m = yield(reply(bad.req, "harvest nothing"), "completed")
	if done: return
	if m.type != Proto.MSG_APPLIED or m.code != Proto.E_NOT_FOUND or m.seq != bad.seq:
		fail("harvest of a missing entity: %s" % str(m))
		return
	var far = ow.build(wall_type, Vector3(100, 0, 100))
	m = yield(reply(far.req, "build too far"), "completed")
	if done: return
	if m.type != Proto.MSG_APPLIED or m.code != Proto.E_TOO_FAR:
		fail("build out of reach: %s" % str(m))
		return
	m = yield(reply(ow.join(), "JOIN twice"), "completed")
	if done: return
	if m.type != Proto.MSG_ERROR or m.code != Proto.E_STATE or not ow.is_open():
		fail("second JOIN: expected ERROR OW_E_STATE on an open connection, got %s" % str(m))
		return
	# Two actions in flight when the connection drops: a craft that was sent (the server applies
	# it), and a harvest of the rock at (-3, 0, 3) still in the client's queue (never sent). After
	# RESUME and JOIN the client re-sends every action not confirmed durable, with its seq: each is
	# applied exactly once (2 wood -> 4 planks, not 8; the rock yields 3 stone once).
	var rock = 0
	for e in ow.entities_of_type("rock"):
		if e.pos.distance_to(ROCK_POS) < 0.01:
			rock = e.id
	if rock == 0:
		fail("no rock at (-3, 0, 3)")
		return
	var pend = ow.craft(planks)
	yield(self, "idle_frame")   # the craft goes out with this frame's poll
	var lost = ow.harvest(rock)
	log_step("drop the connection: craft seq %d sent, harvest seq %d queued" % [pend.seq, lost.seq])
	ow.drop_connection()
	if not (yield(until("is_true", [self, "closed"]), "completed")): return
	closed = false
	byes.clear()
	err = ow.connect_to_server(url)
	if err != OK:
		fail("reconnect: error %d" % err)
		return
	m = yield(reply(ow.hello(), "HELLO 2"), "completed")
	if done: return
	m = yield(reply(ow.resume(), "RESUME"), "completed")
	if done: return
	if m.type != Proto.MSG_SESSION or not m.resumed or m.account != account or m.avatar != avatar \
			or m.last_seq < pend.seq - 1 or m.last_seq > pend.seq:
		fail("RESUME: expected resumed SESSION with last_seq %d, got %s" % [pend.seq, str(m)])
		return
	print("  resumed: last_seq=%d (craft %s by the server before the drop)" % [m.last_seq, "applied" if m.last_seq == pend.seq else "not seen"])
	var fulls = full_snapshots
	m = yield(reply(ow.join(), "JOIN 2"), "completed")
	if done: return
	if m.type != Proto.MSG_JOINED:
		fail("JOIN after RESUME: %s" % str(m))
		return
	if not (yield(until("full_snapshot_after", [fulls]), "completed")): return
	if not ow.entities.has(wall) or not ow.entities.has(comp_wall):
		fail("full snapshot after RESUME lacks a wall")
		return
	for sent in [pend, lost]:
		if not (yield(until("has_key", [durables, sent.seq]), "completed")): return
		if durables[sent.seq] != 0:
			fail("seq %d: DURABLE status %d" % [sent.seq, durables[sent.seq]])
			return
	if not applied_by_seq.has(lost.seq):
		fail("the queued harvest seq %d was not re-sent after RESUME" % lost.seq)
		return
	var la = applied_by_seq[lost.seq]
	if la.code != 0 or la.count != 3 or la.replayed:
		fail("re-sent harvest: %s" % str(la))
		return
	if ow.unconfirmed_count() != 0:
		fail("%d actions still unconfirmed" % ow.unconfirmed_count())
		return
	if not (yield(until("count_of_type_is", ["plank", account, 4]), "completed")): return
	if not (yield(until("count_of_type_is", ["wood", account, 1]), "completed")): return
	if not (yield(until("count_of_type_is", ["stone", account, 3]), "completed")): return
	print("  exactly once: craft seq %d %s, harvest seq %d re-sent and applied; 4 planks, 1 wood, 3 stone" % [
		pend.seq, "replayed" if applied_by_seq.has(pend.seq) and applied_by_seq[pend.seq].replayed else "confirmed", lost.seq])
	var again = ow.send_action({"action": Proto.ACT_BUILD, "kind": wall_type, "pos": MY_WALL_POS,
		"rot": Quat(Vector3.UP, deg2rad(45))}, b_sent.seq)
	m = yield(reply(again.req, "build replay"), "completed")
	if done: return
	if m.type != Proto.MSG_APPLIED or not m.replayed or m.code != 0 or m.entity != wall or m.seq != b_sent.seq:
		fail("re-sent build: expected the original result flagged replayed, got %s" % str(m))
		return
	print("  replayed: seq=%d entity=%d" % [m.seq, m.entity])
	if ow.entities_of_type("wall").size() != 2:
		fail("walls after replay: %d" % ow.entities_of_type("wall").size())
		return

	# LOGOUT: OK, SERVER_BYE NORMAL, close.
	log_step("logout")
	m = yield(reply(ow.logout(), "LOGOUT"), "completed")
	if done: return
	if m.type != Proto.MSG_OK:
		fail("LOGOUT: %s" % str(m))
		return
	if not (yield(until("is_true", [self, "closed"]), "completed")): return
	if byes.size() != 1 or byes[0][0] != Proto.BYE_NORMAL:
		fail("expected one SERVER_BYE NORMAL, got %s" % str(byes))
		return
	print("  stats: %s" % str(ow.stats))
	done = true
	print("OTHERWORLD_GODOT_OK")
	quit(0)


func full_snapshot_after(n: int) -> bool:
	return full_snapshots > n
