// The worked example of docs/protocol.md section 8: the real Receiver and Pusher, with the example's fixed nonces,
// produce the byte exchange; the test prints it as an annotated hex dump and checks that the bytes written in
// docs/protocol.md (between the worked-example markers) are exactly those bytes, so the page cannot drift from the
// code. Set OTTER_REGENERATE_DOCS=1 to rewrite that block of docs/protocol.md from the code instead.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core_test_util.hpp"

namespace otter::test {
namespace {

using namespace otter::core;

const std::string kExampleKey = "otter-example-key-0123";
const std::string kExampleId = "dev-1";
const std::string kExampleName = "greeting.txt";
const Bytes kExampleContent = bytes_of(std::string("hello"));
constexpr const char* kBegin = "<!-- worked-example:begin -->";
constexpr const char* kEnd = "<!-- worked-example:end -->";
constexpr const char* kDocPath = OTTER_SOURCE_DIR "/docs/protocol.md";

struct Exchanged {
  std::string direction;  // "device → pusher" or "pusher → device"
  Frame frame;
};

// Runs the example and returns its frames in protocol order.
std::vector<Exchanged> run_example() {
  FakeDevice dev;
  dev.free = 2 * 1024 * 1024;
  FakeStorage storage(dev);
  TestCrypto device_crypto, pusher_crypto;
  for (int i = 0; i < 32; ++i) device_crypto.scripted.push_back(static_cast<std::uint8_t>(i));
  for (int i = 0; i < 32; ++i) pusher_crypto.scripted.push_back(static_cast<std::uint8_t>(0xA0 + i));

  ReceiverConfig cfg;
  cfg.key = view(kExampleKey);
  cfg.device_id = view(kExampleId);
  cfg.caps = caps::file | caps::resume | caps::stat | caps::reboot;
  cfg.fw_state = FwState::unknown;
  cfg.window = 65536;
  cfg.max_size = 1024 * 1024;
  Receiver r(cfg, storage, device_crypto);
  const PushParams params = push_params(kExampleName, kExampleContent, kExampleKey);
  Pusher p(params, pusher_crypto);

  std::uint64_t clock = 0;
  LinkOptions o;
  o.max_split = 1 << 20;
  const LinkResult res = run_link(r, p, kExampleContent, o, clock);
  EXPECT_FALSE(res.stalled);
  EXPECT_EQ(p.error(), ErrorCode::ok) << p.error_message();
  EXPECT_EQ(r.result(), ErrorCode::ok);
  EXPECT_EQ(dev.files.at(kExampleName), kExampleContent);
  EXPECT_TRUE(device_crypto.scripted.empty());  // exactly one nonce drawn on each side
  EXPECT_TRUE(pusher_crypto.scripted.empty());

  const auto d = split_frames(res.to_pusher);
  const auto u = split_frames(res.to_device);
  EXPECT_EQ(d.size(), 4u);  // HELLO READY ACK DONE
  EXPECT_EQ(u.size(), 2u);  // PUSH DATA
  if (d.size() != 4 || u.size() != 2) return {};
  const std::string down = "device → pusher", up = "pusher → device";
  return {{down, d[0]}, {up, u[0]}, {down, d[1]}, {up, u[1]}, {down, d[2]}, {down, d[3]}};
}

// --- rendering
// ------------------------------------------------------------------------------------------------------

class Dump {
 public:
  // One field: its bytes (16 per line) and what they mean.
  void field(const std::uint8_t* p, std::size_t n, const std::string& meaning) {
    for (std::size_t at = 0; at < n; at += 16) {
      const std::size_t k = std::min<std::size_t>(16, n - at);
      std::string h = hex(p + at, k, " ");
      h.resize(48, ' ');
      out_ += h + "| " + (at == 0 ? meaning : "  (continued)") + "\n";
    }
  }
  void field(const Bytes& b, std::size_t at, std::size_t n, const std::string& meaning) {
    field(b.data() + at, n, meaning);
  }
  void note(const std::string& s) { out_ += s + "\n"; }
  [[nodiscard]] const std::string& str() const { return out_; }

 private:
  std::string out_;
};

std::string quoted(const Bytes& b, std::size_t at, std::size_t n) {
  return "\"" + std::string(b.begin() + static_cast<long>(at), b.begin() + static_cast<long>(at + n)) + "\"";
}

std::string u64_at(const Bytes& b, std::size_t at) { return std::to_string(get_u64(b.data() + at)); }

std::string label_hex(const char* label) {
  return hex(reinterpret_cast<const std::uint8_t*>(label), std::strlen(label), " ");
}

std::string render(const std::vector<Exchanged>& ex) {
  std::ostringstream md;
  const Bytes& hello = ex[0].frame.payload;
  const Bytes& push = ex[1].frame.payload;
  const std::uint8_t* request_mac = push.data() + push.size() - kMacSize;
  const std::string rmac = hex(request_mac, 16, " ") + " " + hex(request_mac + 16, 16, " ");
  md << "Key bytes (ASCII `" << kExampleKey << "`, " << kExampleKey.size() << " bytes): `"
     << hex(bytes_of(kExampleKey), " ") << "`.\n\n"
     << "Each frame is one block. A line `hex bytes | meaning` carries the frame's bytes in order, header first; "
        "lines\n"
     << "that do not start with hex bytes are commentary (the MAC inputs). `tests/core/worked_example_test.cpp` "
        "reads\n"
     << "the bytes back from this page and fails if they differ from what `core/` produces.\n";

  const char* names[] = {"HELLO", "PUSH", "READY", "DATA", "ACK", "DONE"};
  for (std::size_t i = 0; i < ex.size(); ++i) {
    const Frame& f = ex[i].frame;
    const Bytes& p = f.payload;
    Dump d;
    d.field(f.raw, 0, 1, "type 0x" + hex(f.raw.data(), 1) + " " + names[i]);
    d.field(f.raw, 1, 2, "length " + std::to_string(p.size()));
    const std::size_t h = 3;  // payload offset inside raw
    switch (i) {
      case 0:
        d.field(f.raw, h + 0, 4, "magic " + quoted(p, 0, 4));
        d.field(f.raw, h + 4, 1, "version 1");
        d.field(f.raw, h + 5, 2, "caps 0x001D = FILE | RESUME | STAT | REBOOT");
        d.field(f.raw, h + 7, 1, "fw_state 0 (unknown / not applicable)");
        d.field(f.raw, h + 8, 4, "window " + std::to_string(get_u32(p.data() + 8)));
        d.field(f.raw, h + 12, 8, "max_size " + u64_at(p, 12) + " (1 MiB)");
        d.field(f.raw, h + 20, 8, "free " + u64_at(p, 20) + " (2 MiB)");
        d.field(f.raw, h + 28, 32, "nonce (device), 32 bytes");
        d.field(f.raw, h + 60, 1, "id_len " + std::to_string(p[60]));
        d.field(f.raw, h + 61, p[60], "id " + quoted(p, 61, p[60]));
        break;
      case 1: {
        const std::size_t name_len = get_u16(p.data() + 75);
        d.field(f.raw, h + 0, 1, "version 1");
        d.field(f.raw, h + 1, 32, "client_nonce, 32 bytes");
        d.field(f.raw, h + 33, 1, "kind 0 (file)");
        d.field(f.raw, h + 34, 1, "flags 0");
        d.field(f.raw, h + 35, 8, "size " + u64_at(p, 35));
        d.field(f.raw, h + 43, 32, "sha256 = SHA-256(\"hello\")");
        d.field(f.raw, h + 75, 2, "name_len " + std::to_string(name_len));
        d.field(f.raw, h + 77, name_len, "name " + quoted(p, 77, name_len));
        d.field(f.raw, h + 77 + name_len, 32, "mac = request MAC, below");
        d.note("mac = HMAC-SHA256(key, m), m = " + std::to_string(15 + hello.size() + p.size() - kMacSize) +
               " bytes:");
        d.note("  \"otter/1 request\"          " + label_hex(kLabelRequest));
        d.note("  || HELLO payload          the " + std::to_string(hello.size()) +
               " bytes of frame 1 after its header (magic .. id)");
        d.note("  || PUSH payload w/o mac   the " + std::to_string(p.size() - kMacSize) +
               " bytes above from version to name");
        break;
      }
      case 2:
        d.field(f.raw, h + 0, 8, "offset " + u64_at(p, 0) + " (fresh start)");
        d.field(f.raw, h + 8, 32, "mac = READY MAC, below");
        d.note("mac = HMAC-SHA256(key, \"otter/1 ready\" || request_mac || offset):");
        d.note("  \"otter/1 ready\"   " + label_hex(kLabelReady));
        d.note("  request_mac       " + rmac);
        d.note("  offset            " + hex(p.data(), 8, " "));
        break;
      case 3:
        d.field(f.raw, h + 0, p.size(),
                "content bytes 0.." + std::to_string(p.size() - 1) + " " + quoted(p, 0, p.size()));
        break;
      case 4:
        d.field(f.raw, h + 0, 8, "offset " + u64_at(p, 0) + " (all bytes received and written)");
        break;
      case 5:
        d.field(f.raw, h + 0, 8, "size " + u64_at(p, 0));
        d.field(f.raw, h + 8, 32, "sha256 the device computed");
        d.field(f.raw, h + 40, 1, "rebooting 0");
        d.field(f.raw, h + 41, 32, "mac = DONE MAC, below");
        d.note("mac = HMAC-SHA256(key, \"otter/1 done\" || request_mac || size || sha256 || rebooting):");
        d.note("  \"otter/1 done\"    " + label_hex(kLabelDone));
        d.note("  request_mac       " + rmac);
        d.note("  size              " + hex(p.data(), 8, " "));
        d.note("  sha256            " + hex(p.data() + 8, 16, " ") + " " + hex(p.data() + 24, 16, " "));
        d.note("  rebooting         " + hex(p.data() + 40, 1, " "));
        break;
    }
    md << "\n**" << (i + 1) << ". " << names[i] << "**, " << ex[i].direction << ", payload " << p.size()
       << " bytes (frame " << f.raw.size() << ")\n\n```text\n"
       << d.str() << "```\n";
  }
  return md.str();
}

// --- parsing the page
// -------------------------------------------------------------------------------------------------

std::string read_doc() {
  std::ifstream in(kDocPath, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << kDocPath;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool is_hex_digit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A bytes line is `hh hh ... hh   | meaning`: two-digit hex bytes separated by single spaces from the start of the
// line, then spaces and a `|`. Appends the bytes to `out`; false (nothing appended) for any other line.
bool parse_bytes_line(const std::string& line, Bytes& out) {
  std::size_t i = 0;
  Bytes got;
  while (i + 1 < line.size() && is_hex_digit(line[i]) && is_hex_digit(line[i + 1]) &&
         (i + 2 == line.size() || line[i + 2] == ' ')) {
    got.push_back(unhex(line.substr(i, 2))[0]);
    i += 3;
    if (i < line.size() && line[i] == ' ') break;  // two spaces: the bytes are over
  }
  if (got.empty()) return false;
  while (i < line.size() && line[i] == ' ') ++i;
  if (i >= line.size() || line[i] != '|') return false;
  out.insert(out.end(), got.begin(), got.end());
  return true;
}

// The frames written in the worked-example block: one per code block, from the `hex | meaning` lines.
std::vector<Bytes> parse_block(const std::string& doc) {
  const std::size_t b = doc.find(kBegin);
  const std::size_t e = doc.find(kEnd);
  EXPECT_NE(b, std::string::npos);
  EXPECT_NE(e, std::string::npos);
  if (b == std::string::npos || e == std::string::npos || e < b) return {};
  std::istringstream block(doc.substr(b + std::strlen(kBegin), e - b - std::strlen(kBegin)));
  std::vector<Bytes> frames;
  Bytes current;
  bool in_code = false;
  std::string line;
  while (std::getline(block, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("```", 0) == 0) {
      if (in_code && !current.empty()) frames.push_back(current);
      current.clear();
      in_code = !in_code;
      continue;
    }
    if (in_code) parse_bytes_line(line, current);
  }
  return frames;
}

TEST(WorkedExample, ExchangeMatchesTheProtocolDocument) {
  const std::vector<Exchanged> ex = run_example();
  ASSERT_EQ(ex.size(), 6u);

  // Facts the page states in prose, checked independently of the dump.
  EXPECT_EQ(ex[0].frame.payload.size(), kHelloFixed + kExampleId.size());
  EXPECT_EQ(hex(ex[0].frame.payload.data() + 28, 32),
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  EXPECT_EQ(hex(ex[1].frame.payload.data() + 1, 32),
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf");
  EXPECT_EQ(ex[1].frame.payload.size(), kPushFixed + kExampleName.size());
  EXPECT_EQ(hex(ex[1].frame.payload.data() + 43, 32),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  EXPECT_EQ(ex[2].frame.type, 0x02);
  EXPECT_EQ(get_u64(ex[2].frame.payload.data()), 0u);
  EXPECT_EQ(ex[3].frame.raw, (Bytes{0x12, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(ex[4].frame.raw, (Bytes{0x03, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 5}));
  EXPECT_EQ(ex[5].frame.type, 0x04);

  const std::string block = render(ex);
  std::printf("%s", block.c_str());

  std::string doc = read_doc();
  if (const char* regen = std::getenv("OTTER_REGENERATE_DOCS"); regen != nullptr && std::string(regen) == "1") {
    const std::size_t b = doc.find(kBegin);
    const std::size_t e = doc.find(kEnd);
    ASSERT_TRUE(b != std::string::npos && e != std::string::npos && b < e);
    doc = doc.substr(0, b + std::strlen(kBegin)) + "\n" + block + doc.substr(e);
    std::ofstream(kDocPath, std::ios::binary) << doc;
    std::printf("rewrote the worked example in %s\n", kDocPath);
  }

  const std::vector<Bytes> documented = parse_block(read_doc());
  ASSERT_EQ(documented.size(), ex.size()) << "docs/protocol.md's worked example does not have one block per frame";
  for (std::size_t i = 0; i < ex.size(); ++i) {
    EXPECT_EQ(hex(documented[i], " "), hex(ex[i].frame.raw, " ")) << "frame " << i + 1 << " of the worked example";
  }
}

TEST(WorkedExample, ParserRejectsADifferentPage) {
  // The check can fail: a single changed byte in the page is noticed.
  const std::vector<Exchanged> ex = run_example();
  ASSERT_EQ(ex.size(), 6u);
  std::string page = std::string(kBegin) + "\n" + render(ex) + kEnd + "\n";
  std::vector<Bytes> parsed = parse_block(page);
  ASSERT_EQ(parsed.size(), 6u);
  EXPECT_EQ(parsed[3], ex[3].frame.raw);
  const std::size_t at = page.find("68 65 6c 6c 6f");
  ASSERT_NE(at, std::string::npos);
  page[at + 1] = '9';  // 'h' -> 'i'
  parsed = parse_block(page);
  ASSERT_EQ(parsed.size(), 6u);
  EXPECT_NE(parsed[3], ex[3].frame.raw);
}

}  // namespace
}  // namespace otter::test
