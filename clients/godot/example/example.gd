# Example: how a game uses the otherworld addon (Godot 3.2).
#
# The scene (example.tscn) is a Spatial with this script. It connects, registers (a taken name is
# fine) and logs in, joins, and then:
#   - mirrors the replicated entities as simple meshes (entity_updated / entity_removed),
#   - shows the other players' avatars from POSES as spheres,
#   - streams its own pose (root, head, hands) at 30 Hz,
#   - keys: H harvests the nearest tree, C crafts planks, B builds a wall 2 m in front, T chats.
#
# Settings come from the command line after "--" (or the environment): --url=ws://host:port/ws
# --user=NAME --password=PW, and --auto, which plays harvest, craft, build by itself, prints
# OTHERWORLD_EXAMPLE_OK once the wall is durable and replicated, and quits (tests/godot/run.sh
# runs it this way, headless).
extends Spatial

const OwClient = preload("res://addons/otherworld/client.gd")
const Proto = preload("res://addons/otherworld/protocol.gd")

var ow                      # the client node
var url = "ws://127.0.0.1:8080/ws"
var user = "example_player"
var password = "example-password"
var auto = false

var my_pos = Vector3(0, 0, 2)
var meshes = {}             # entity id -> node (MeshInstance)
var avatars = {}            # avatar id -> node (other players)
var pose_clock = 0.0
var wall = 0                # the wall this player built, once durable (auto mode)
var _sent = {}              # seq -> "harvest" / "craft" / "build" (auto mode)
var _built = 0              # entity of the build's APPLIED (auto mode)
var _register_req = 0


func _ready() -> void:
	_read_settings()
	ow = OwClient.new()
	ow.client_name = "otherworld-example"
	add_child(ow)
	ow.connect("connected", self, "_on_connected")
	ow.connect("disconnected", self, "_on_disconnected")
	ow.connect("welcome", self, "_on_welcome")
	ow.connect("ok", self, "_on_ok")
	ow.connect("session", self, "_on_session")
	ow.connect("joined", self, "_on_joined")
	ow.connect("applied", self, "_on_applied")
	ow.connect("durable", self, "_on_durable")
	ow.connect("entity_updated", self, "_on_entity_updated")
	ow.connect("entity_removed", self, "_on_entity_removed")
	ow.connect("poses", self, "_on_poses")
	ow.connect("event", self, "_on_event")
	ow.connect("error", self, "_on_error")
	ow.connect("bye", self, "_on_bye")
	print("example: connecting to ", url)
	if ow.connect_to_server(url) != OK:
		_quit(1, "cannot start connecting")
		return
	ow.hello()   # queued; sent as soon as the WebSocket is open


func _read_settings() -> void:
	for a in OS.get_cmdline_args():
		if a.begins_with("--url="):
			url = a.substr(6, a.length())
		elif a.begins_with("--user="):
			user = a.substr(7, a.length())
		elif a.begins_with("--password="):
			password = a.substr(11, a.length())
		elif a == "--auto":
			auto = true
	if OS.get_environment("OW_EXAMPLE_URL") != "":
		url = OS.get_environment("OW_EXAMPLE_URL")
	if OS.get_environment("OW_EXAMPLE_USER") != "":
		user = OS.get_environment("OW_EXAMPLE_USER")
	if OS.get_environment("OW_EXAMPLE_AUTO") == "1":
		auto = true


func _process(delta: float) -> void:
	if not ow.in_world:
		return
	# Stream the pose. A VR game reads these from ARVRCamera / ARVRController nodes.
	pose_clock += delta
	if pose_clock >= 1.0 / 30.0:
		pose_clock = 0.0
		var t = OS.get_ticks_msec() / 1000.0
		var head = [Vector3(0, 1.65, 0), Quat(Vector3.UP, sin(t) * 0.3)]
		var left = [Vector3(-0.25, 1.1, -0.3), Quat(0, 0, 0, 1)]
		var right = [Vector3(0.25, 1.1 + sin(t * 2.0) * 0.1, -0.3), Quat(0, 0, 0, 1)]
		ow.send_pose(my_pos, Quat(0, 0, 0, 1), head, left, right)


func _unhandled_input(event: InputEvent) -> void:
	if not (event is InputEventKey) or not event.pressed or not ow.in_world:
		return
	match event.scancode:
		KEY_H:
			harvest_nearest_tree()
		KEY_C:
			ow.craft(ow.recipe_id("planks"))
		KEY_B:
			ow.build(ow.type_id("wall"), my_pos + Vector3(0, 0, -2))
		KEY_T:
			ow.chat("hello from the Godot example")


func harvest_nearest_tree() -> Dictionary:
	var best = null
	for e in ow.entities_of_type("tree"):
		if best == null or e.pos.distance_to(my_pos) < best.pos.distance_to(my_pos):
			best = e
	if best == null:
		print("example: no tree in sight")
		return {}
	return ow.harvest(best.id)


# ---- protocol flow ----------------------------------------------------------------------------

func _on_connected() -> void:
	print("example: WebSocket open")


func _on_welcome(m: Dictionary) -> void:
	print("example: welcome from %s (tick %d Hz, poses %d Hz)" % [m.server_name, m.tick_hz, m.pose_hz])
	# REGISTER is answered by OK, or by ERROR OW_E_NAME_TAKEN if the account exists: either way,
	# LOGIN next.
	_register_req = ow.register(user, password)


func _on_ok(req: int) -> void:
	if req == _register_req:
		ow.login(user, password)


func _on_error(m: Dictionary) -> void:
	if m.req == _register_req and m.code == Proto.E_NAME_TAKEN:
		ow.login(user, password)
		return
	print("example: error %s: %s" % [Proto.error_name(m.code), m.text])
	if auto:
		_quit(1, "error " + Proto.error_name(m.code))


func _on_session(m: Dictionary) -> void:
	print("example: logged in, account %d, avatar %d" % [m.account, m.avatar])
	ow.join()


func _on_joined(world: Dictionary) -> void:
	print("example: joined, %d types, %d recipes" % [world.types.size(), world.recipes.size()])
	if auto:
		# Wait for the first snapshot before looking for a tree.
		yield(ow, "snapshot_applied")
		var sent = harvest_nearest_tree()
		if sent.empty():
			_quit(1, "no tree")
			return
		_act("harvest", sent)


func _on_applied(m: Dictionary) -> void:
	print("example: applied seq %d: %s entity %d count %d" % [m.seq, Proto.error_name(m.code), m.entity, m.count])
	if auto and m.code != 0:
		_quit(1, "action refused: " + Proto.error_name(m.code))
	elif auto and _sent.get(m.seq, "") == "build":
		_built = m.entity


func _on_durable(m: Dictionary) -> void:
	# Actions run in order: harvest (seq n), craft (n + 1), build (n + 2).
	if not auto:
		return
	for seq in m.seqs:
		var a = _sent.get(seq, "")
		if a == "harvest":
			_act("craft", ow.craft(ow.recipe_id("planks")))
		elif a == "craft":
			_act("build", ow.build(ow.type_id("wall"), my_pos + Vector3(0, 0, -2)))
		elif a == "build":
			# Durable: now the other players see it too. Done once our table has it.
			wall = _built
			if ow.entities.has(wall):
				_on_entity_updated(ow.entities[wall])


func _act(what: String, sent: Dictionary) -> void:
	_sent[sent.seq] = what


func _on_entity_updated(e: Dictionary) -> void:
	if e.parent != 0:
		return   # items in inventories, riders: not drawn here
	var mi = meshes.get(e.id)
	if mi == null:
		match ow.type_kind(e.type):
			Proto.KIND_STRUCTURE:
				mi = _visual(CubeMesh)
			Proto.KIND_RESOURCE:
				mi = _visual(CylinderMesh)
			Proto.KIND_AVATAR:
				mi = _visual(CapsuleMesh)
			_:
				mi = _visual(PlaneMesh)
		add_child(mi)
		meshes[e.id] = mi
	mi.transform = Transform(Basis(e.rot).scaled(e.scale), e.pos)
	if auto and e.id == wall and wall != 0 and e.owner == ow.session_info.account:
		print("example: my wall %d is at %s" % [e.id, str(e.pos)])
		_quit(0, "")


# A node showing a mesh; a plain Spatial when running headless (godot3-server draws nothing).
func _visual(mesh_class) -> Spatial:
	if OS.get_name() == "Server":
		return Spatial.new()
	var mi = MeshInstance.new()
	mi.mesh = mesh_class.new()
	return mi


func _on_entity_removed(id: int) -> void:
	if meshes.has(id):
		meshes[id].queue_free()
		meshes.erase(id)


func _on_poses(_tick: int, entries: Array) -> void:
	for en in entries:
		var mi = avatars.get(en.avatar)
		if mi == null:
			mi = _visual(SphereMesh)
			add_child(mi)
			avatars[en.avatar] = mi
		var p = en.pose
		mi.transform = Transform(Basis(p.root_quat), p.root_pos + Vector3(0, 1.6, 0))


func _on_event(m: Dictionary) -> void:
	print("example: [%s] %d: %s" % ["chat" if m.kind == Proto.EVENT_CHAT else "system", m.from, m.text])


func _on_bye(reason: int, text: String) -> void:
	print("example: server said bye (%d): %s" % [reason, text])


func _on_disconnected(_clean: bool) -> void:
	print("example: disconnected")


var _done = false


func _quit(code: int, why: String) -> void:
	if _done:
		return
	_done = true
	if code == 0:
		print("OTHERWORLD_EXAMPLE_OK")
	else:
		print("OTHERWORLD_EXAMPLE_FAIL: ", why)
	ow.close()
	get_tree().quit(code)
