#!/usr/bin/env python3
"""Writes the seed corpus of the gltf fuzz target (tests/fuzz/corpus/gltf/): small glTF 2.0 assets
made here from the Khronos specification, each valid, and together using most of what the validator
checks (GLB chunks, data: URIs, package URIs, indices, sparse accessors, matrices, morph targets,
skins, animations, images, samplers, cameras). The fuzz target resolves "*.png" to a PNG and any
other package path to the input itself (tests/fuzz/gltf.c).

    python3 tests/fuzz/gltf_seeds.py [DIR]     (default: tests/fuzz/corpus/gltf)
"""
import base64, json, os, struct, sys, zlib

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "gltf")
os.makedirs(out, exist_ok=True)


def png(w, h):
    """A complete RGBA PNG of w x h grey pixels: IHDR, one IDAT, IEND, with their CRCs."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + b"\x80\x80\x80\xff" * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def jpeg(w, h):
    # SOI, an APP0 segment, then SOF0 with the frame size: what a header reader needs.
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x22\0\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def ktx2(w, h):
    return b"\xabKTX 20\xbb\r\n\x1a\n" + struct.pack("<IIIIIIII", 0, 1, w, h, 0, 0, 1, 1) + b"\0" * 16


class Bin:
    def __init__(self):
        self.data = bytearray()
        self.views = []

    def add(self, b, stride=None, target=None):
        while len(self.data) % 4:
            self.data.append(0)
        v = {"buffer": 0, "byteOffset": len(self.data), "byteLength": len(b)}
        if stride:
            v["byteStride"] = stride
        if target:
            v["target"] = target
        self.data += b
        self.views.append(v)
        return len(self.views) - 1

    def padded(self):
        return bytes(self.data) + b"\0" * (-len(self.data) % 4)


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def glb(doc, binary):
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    chunks = struct.pack("<II", len(js), 0x4E4F534A) + js
    if binary is not None:
        binary += b"\0" * (-len(binary) % 4)
        chunks += struct.pack("<II", len(binary), 0x004E4942) + binary
    return struct.pack("<III", 0x46546C67, 2, 12 + len(chunks)) + chunks


def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def triangle(b):
    pos = b.add(f32(0, 0, 0, 1, 0, 0, 0, 1, 0), target=34962)
    ind = b.add(struct.pack("<3H", 0, 1, 2), target=34963)
    acc = [
        {"bufferView": pos, "componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]},
        {"bufferView": ind, "componentType": 5123, "count": 3, "type": "SCALAR", "min": [0], "max": [2]},
    ]
    return acc


# 1. The smallest mesh, as glTF JSON with its buffer in a data: URI, and as a GLB.
b = Bin()
acc = triangle(b)
doc = {"asset": {"version": "2.0", "generator": "gltf_seeds.py"}, "scene": 0, "scenes": [{"nodes": [0]}],
       "nodes": [{"mesh": 0}], "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
       "accessors": acc, "bufferViews": b.views}
d = dict(doc, buffers=[{"byteLength": len(b.data),
                        "uri": "data:application/octet-stream;base64," + base64.b64encode(bytes(b.data)).decode()}])
write("seed-triangle.gltf", json.dumps(d, indent=1).encode())
write("seed-triangle.glb", glb(dict(doc, buffers=[{"byteLength": len(b.data)}]), b.padded()))

# 2. A skinned, textured, animated avatar-like asset as a GLB: two joints, weights, inverse bind
# matrices, a PNG in a bufferView, a material, a sampler, an animation of a joint.
b = Bin()
acc = triangle(b)
jnt = b.add(bytes([0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]))
wgt = b.add(f32(1, 0, 0, 0, 0.5, 0.5, 0, 0, 1, 0, 0, 0))
ident = f32(1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1)
ibm = b.add(ident + ident)
uv = b.add(f32(0, 0, 1, 0, 0, 1))
img = b.add(png(64, 64))
t = b.add(f32(0, 0.5, 1))
r = b.add(f32(0, 0, 0, 1, 0, 0.7071068, 0, 0.7071068, 0, 0, 0, 1))
acc += [
    {"bufferView": jnt, "componentType": 5121, "count": 3, "type": "VEC4"},
    {"bufferView": wgt, "componentType": 5126, "count": 3, "type": "VEC4"},
    {"bufferView": ibm, "componentType": 5126, "count": 2, "type": "MAT4"},
    {"bufferView": t, "componentType": 5126, "count": 3, "type": "SCALAR", "min": [0], "max": [1]},
    {"bufferView": r, "componentType": 5126, "count": 3, "type": "VEC4"},
    {"bufferView": uv, "componentType": 5126, "count": 3, "type": "VEC2"},
]
doc = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}],
       "nodes": [{"children": [1, 2], "name": "avatar"}, {"mesh": 0, "skin": 0},
                 {"children": [3], "translation": [0, 1, 0]}, {"rotation": [0, 0, 0, 1], "scale": [1, 1, 1]}],
       "skins": [{"joints": [2, 3], "inverseBindMatrices": 4, "skeleton": 2}],
       "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "JOINTS_0": 2, "WEIGHTS_0": 3, "TEXCOORD_0": 7},
                                   "indices": 1, "material": 0, "mode": 4}]}],
       "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}, "baseColorFactor": [1, 1, 1, 1],
                                               "metallicFactor": 0, "roughnessFactor": 0.5},
                      "alphaMode": "MASK", "doubleSided": True}],
       "textures": [{"source": 0, "sampler": 0}],
       "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 33071}],
       "images": [{"bufferView": img, "mimeType": "image/png"}],
       "animations": [{"samplers": [{"input": 5, "output": 6, "interpolation": "LINEAR"}],
                       "channels": [{"sampler": 0, "target": {"node": 3, "path": "rotation"}}]}],
       "accessors": acc, "bufferViews": b.views, "buffers": [{"byteLength": len(b.data)}]}
write("seed-skinned.glb", glb(doc, b.padded()))

# 3. Package URIs (a buffer file and a PNG file), a JPEG and a KTX2 in data: URIs, a camera, a
# matrix node, a triangle strip without indices.
b = Bin()
acc = [{"bufferView": b.add(f32(0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0)), "componentType": 5126, "count": 4,
        "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]}]
doc = {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0, 1]}],
       "nodes": [{"mesh": 0, "matrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]}, {"camera": 0}],
       "cameras": [{"type": "perspective", "perspective": {"yfov": 1.0, "znear": 0.1}}],
       "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "mode": 5, "material": 0}]}],
       "materials": [{"normalTexture": {"index": 0}, "occlusionTexture": {"index": 1},
                      "emissiveTexture": {"index": 2, "texCoord": 0}}],
       "textures": [{"source": 0}, {"source": 1}, {"source": 2}],
       "images": [{"uri": "textures/skin.png"},
                  {"uri": "data:image/jpeg;base64," + base64.b64encode(jpeg(32, 16)).decode()},
                  {"uri": "data:image/ktx2;base64," + base64.b64encode(ktx2(128, 128)).decode(),
                   "mimeType": "image/ktx2"}],
       "accessors": acc, "bufferViews": b.views, "buffers": [{"byteLength": len(b.data), "uri": "mesh%20data.bin"}]}
# The package path "mesh data.bin" resolves to the input itself: the buffer is the file's first bytes.
js = json.dumps(doc, separators=(",", ":")).encode()
write("seed-package.gltf", js)

# 4. Sparse accessors, matrices of small components (column padding), morph targets with weights.
b = Bin()
acc = triangle(b)
dpos = b.add(f32(0, 0, 1, 0, 0, 1, 0, 0, 1))
sidx = b.add(struct.pack("<H", 2) + b"\0\0")
sval = b.add(f32(0, 0, 2))
m2 = b.add(bytes([1, 0, 0, 0, 0, 1, 0, 0]))
m3 = b.add(struct.pack("<3H", 1, 0, 0) + b"\0\0" + struct.pack("<3H", 0, 1, 0) + b"\0\0" + struct.pack("<3H", 0, 0, 1) + b"\0\0")
acc += [
    {"bufferView": dpos, "componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 1], "max": [0, 0, 1]},
    {"componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0], "max": [0, 0, 2],
     "sparse": {"count": 1, "indices": {"bufferView": sidx, "componentType": 5123},
                "values": {"bufferView": sval}}},
    {"bufferView": m2, "componentType": 5121, "count": 1, "type": "MAT2"},
    {"bufferView": m3, "componentType": 5123, "count": 1, "type": "MAT3"},
]
doc = {"asset": {"version": "2.1", "minVersion": "2.0"}, "extensionsUsed": ["KHR_materials_unlit"],
       "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "weights": [0.5, 0.5]}],
       "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "targets": [{"POSITION": 2}, {"POSITION": 3}]}],
                   "weights": [0, 0]}],
       "accessors": acc, "bufferViews": b.views, "buffers": [{"byteLength": len(b.data)}]}
write("seed-sparse-morph.glb", glb(doc, b.padded()))
print("wrote", len(os.listdir(out)), "seeds to", out)
