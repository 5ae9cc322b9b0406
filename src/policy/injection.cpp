#include "policy/injection.hpp"

#include <re2/re2.h>

#include <array>
#include <string>

namespace bulwark::policy {
namespace {

// Word classes gating the patterns.
enum : std::uint16_t {
  kVerbIgnore = 1 << 0,
  kObjInstr = 1 << 1,
  kVerbReveal = 1 << 2,
  kAdjSystem = 1 << 3,
  kObjPrompt = 1 << 4,
  kRole = 1 << 5,
  kMode = 1 << 6,
  kRestr = 1 << 7,
  kPretend = 1 << 8,
};

struct WordBits {
  std::string_view word;
  std::uint16_t bits;
};
constexpr WordBits kWords[] = {
    {"ignore", kVerbIgnore}, {"disregard", kVerbIgnore}, {"forget", kVerbIgnore},
    {"override", kVerbIgnore}, {"bypass", kVerbIgnore},
    {"instruction", kObjInstr | kObjPrompt}, {"instructions", kObjInstr | kObjPrompt},
    {"prompt", kObjInstr | kObjPrompt}, {"prompts", kObjInstr | kObjPrompt},
    {"message", kObjInstr | kObjPrompt}, {"messages", kObjInstr | kObjPrompt},
    {"directives", kObjInstr}, {"guardrails", kObjInstr}, {"programming", kObjInstr},
    {"rules", kObjInstr | kRestr}, {"guidelines", kObjInstr | kRestr}, {"constraints", kObjInstr},
    {"context", kObjInstr},
    {"reveal", kVerbReveal}, {"show", kVerbReveal}, {"print", kVerbReveal}, {"repeat", kVerbReveal},
    {"output", kVerbReveal}, {"display", kVerbReveal}, {"leak", kVerbReveal}, {"dump", kVerbReveal},
    {"expose", kVerbReveal}, {"tell", kVerbReveal}, {"give", kVerbReveal}, {"what", kVerbReveal},
    {"system", kAdjSystem}, {"initial", kAdjSystem}, {"hidden", kAdjSystem},
    {"original", kAdjSystem}, {"secret", kAdjSystem}, {"developer", kAdjSystem | kMode},
    {"pre", kAdjSystem}, {"preprompt", kAdjSystem | kObjPrompt},
    {"dan", kRole}, {"unrestricted", kRole}, {"unfiltered", kRole}, {"uncensored", kRole},
    {"jailbroken", kRole | kMode}, {"evil", kRole}, {"anything", kRole},
    {"mode", kMode}, {"jailbreak", kMode},
    {"restrictions", kRestr}, {"filters", kRestr}, {"limitations", kRestr}, {"censorship", kRestr},
    {"pretend", kPretend}, {"imagine", kPretend}, {"without", kPretend}, {"no", kPretend},
};


// Words of up to 12 ASCII letters packed 5 bits per letter, case folded.
constexpr std::uint64_t pack(std::string_view w) {
  std::uint64_t k = 0;
  for (char c : w) k = (k << 5) | static_cast<std::uint64_t>((c | 0x20) - 'a' + 1);
  return k;
}

class WordTable {
 public:
  WordTable() {
    for (const WordBits& w : kWords) {
      const std::uint64_t k = pack(w.word);
      std::size_t i = slot(k);
      while (keys_[i] != 0 && keys_[i] != k) i = (i + 1) & (kSlots - 1);
      keys_[i] = k;
      bits_[i] |= w.bits;
      const auto first = static_cast<std::size_t>((w.word[0] | 0x20) - 'a' + 1);
      const auto second = static_cast<std::size_t>((w.word[1] | 0x20) - 'a' + 1);
      auto& lens = len_by_prefix_[first * 27 + second];
      lens = static_cast<std::uint16_t>(lens | (1U << w.word.size()));
    }
  }
  // Most words fail this cheap test on their first two letters (1..26) and length.
  bool may_contain(unsigned first, unsigned second, std::size_t len) const noexcept {
    return len < 16 && ((len_by_prefix_[first * 27 + second] >> len) & 1U) != 0;
  }
  std::uint16_t lookup(std::uint64_t k) const noexcept {
    for (std::size_t i = slot(k);; i = (i + 1) & (kSlots - 1)) {
      if (keys_[i] == k) return bits_[i];
      if (keys_[i] == 0) return 0;
    }
  }

 private:
  static constexpr std::size_t kSlots = 256;
  static std::size_t slot(std::uint64_t k) noexcept {
    return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ULL) >> 56);
  }
  std::array<std::uint64_t, kSlots> keys_{};
  std::array<std::uint16_t, kSlots> bits_{};
  std::array<std::uint16_t, 27 * 27> len_by_prefix_{};
};

RE2::Options options() {
  RE2::Options o;
  o.set_encoding(RE2::Options::EncodingLatin1);
  o.set_case_sensitive(false);
  o.set_log_errors(false);
  return o;
}

struct Heuristic {
  InjectionHeuristic id;
  std::uint16_t all_of;  // every bit group listed must be present
  std::uint16_t second;  // and, when non-zero, one of these
  std::uint16_t third;
  RE2 re;
};

struct Patterns {
  WordTable words;
  std::array<Heuristic, 5> h{{
      {InjectionHeuristic::ignore_instructions, kVerbIgnore, kObjInstr, 0,
       RE2(R"(\b(?:ignore|disregard|forget|override|bypass)\W+(?:\w+\W+){0,3}?)"
           R"((?:previous|prior|above|earlier|preceding|initial|original|system|developer|your|these|those|safety|all|any)\W+)"
           R"((?:\w+\W+){0,2}?(?:instructions?|prompts?|directives|guardrails|programming|rules|guidelines|constraints|context|messages?)\b)",
           options())},
      {InjectionHeuristic::reveal_system_prompt, kVerbReveal, kAdjSystem, kObjPrompt,
       RE2(R"(\b(?:reveal|show|print|repeat|output|display|leak|dump|expose|tell\W+me|give\W+me|what)\W+)"
           R"((?:\w+\W+){0,3}?(?:system|initial|hidden|original|secret|developer|pre-?)\W*(?:prompt|instruction|message)s?\b)",
           options())},
      {InjectionHeuristic::role_override, kRole, 0, 0,
       RE2(R"(\b(?:you\W+are\W+now|from\W+now\W+on\W+you\W+are|act\W+as|pretend\W+to\W+be|you\W+will\W+be)\W+)"
           R"((?:an?\W+)?(?:\w+\W+){0,2}?(?:DAN|unrestricted|unfiltered|uncensored|jailbroken|evil)\b)"
           R"(|\bdo\W+anything\W+now\b)",
           options())},
      {InjectionHeuristic::developer_mode, kMode, 0, 0,
       RE2(R"(\b(?:developer|dev|god|debug|sudo|jailbreak)\W+mode\W+(?:enabled|activated|on|engaged)\b)"
           R"(|\b(?:enable|activate|enter|entering)\W+(?:developer|dev|god|sudo|jailbreak)\W+mode\b)"
           R"(|\[\W*jailbreak\W*\]|\bdeveloper\W+mode\W+output\b|\bjailbroken\b)",
           options())},
      {InjectionHeuristic::no_restrictions, kRestr, kPretend, 0,
       RE2(R"(\b(?:pretend|imagine|act\W+as\W+if|behave\W+as\W+if)\b(?:\W+\w+){0,5}?\W+(?:no|without)\W+)"
           R"((?:any\W+)?(?:\w+\W+)?(?:restrictions|rules|filters|limitations|guidelines|censorship)\b)"
           R"(|\b(?:without|no)\W+(?:any\W+)?(?:\w+\W+)?(?:restrictions|filters|censorship|limitations)\W+(?:whatsoever|at\W+all)\b)",
           options())},
  }};
};

const Patterns& patterns() {
  static const Patterns p;
  return p;
}

constexpr std::size_t kMinBlob = 40;
constexpr std::size_t kMaxBlob = 8192;
constexpr std::size_t kMaxBlobs = 4;

struct WordScan {
  std::uint16_t bits = 0;
  std::array<std::pair<std::size_t, std::size_t>, kMaxBlobs> blobs{};
  std::size_t nblobs = 0;
};

bool base64_char(char c) noexcept {
  return (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=' || c == '-' || c == '_';
}

WordScan scan_words(std::string_view text, const WordTable& table) noexcept {
  // Keys are built only for words whose first two letters and length match a listed
  // word, so most words cost a table test.
  WordScan ws;
  std::size_t len = 0;
  unsigned first = 0;
  unsigned second = 0;
  std::size_t run = 0;
  const std::size_t n = text.size();
  for (std::size_t i = 0; i <= n; ++i) {
    const char c = i < n ? text[i] : ' ';
    const unsigned l = static_cast<unsigned>((c | 0x20) - 'a');
    const bool letter = l < 26;
    if (!letter && table.may_contain(first, second, len)) {
      std::uint64_t key = 0;
      for (char w : text.substr(i - len, len)) key = (key << 5) | static_cast<unsigned>((w | 0x20) - 'a' + 1);
      ws.bits |= table.lookup(key);
    }
    const bool b64 = letter || base64_char(c);
    if (!b64 && run >= kMinBlob && ws.nblobs < kMaxBlobs) ws.blobs[ws.nblobs++] = {i - run, i};
    const unsigned code = letter ? l + 1 : 0;  // 0 keeps the prefix table index in range
    first = len == 0 ? code : first;
    second = len == 1 ? code : second;
    len = letter ? len + 1 : 0;
    run = b64 ? run + 1 : 0;
  }
  return ws;
}

int b64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

// Decodes standard or URL-safe base64; empty unless the result is mostly printable text.
std::string decode_text(std::string_view blob) {
  std::string out;
  out.reserve(blob.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : blob.substr(0, kMaxBlob)) {
    if (c == '=') break;
    const int v = b64_value(c);
    if (v < 0) return {};
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  std::size_t printable = 0;
  for (unsigned char c : out) printable += (c >= 0x20 && c < 0x7F) || c == '\n' || c == '\t' || c == '\r';
  if (out.empty() || printable * 10 < out.size() * 9) return {};
  return out;
}

InjectionMask run_patterns(std::string_view text, std::uint16_t bits, const Patterns& p) {
  InjectionMask found = 0;
  const re2::StringPiece input(text.data(), text.size());
  for (const Heuristic& h : p.h) {
    if ((bits & h.all_of) != h.all_of) continue;
    if (h.second != 0 && (bits & h.second) == 0) continue;
    if (h.third != 0 && (bits & h.third) == 0) continue;
    if (RE2::PartialMatch(input, h.re)) found |= mask_of(h.id);
  }
  return found;
}

}  // namespace

std::string_view name_of(InjectionHeuristic h) noexcept {
  switch (h) {
    case InjectionHeuristic::ignore_instructions: return "ignore_instructions";
    case InjectionHeuristic::reveal_system_prompt: return "reveal_system_prompt";
    case InjectionHeuristic::role_override: return "role_override";
    case InjectionHeuristic::developer_mode: return "developer_mode";
    case InjectionHeuristic::no_restrictions: return "no_restrictions";
    case InjectionHeuristic::encoded_instructions: return "encoded_instructions";
  }
  return "unknown";
}

InjectionMask scan_injection(std::string_view text) {
  const Patterns& p = patterns();
  const WordScan ws = scan_words(text, p.words);
  InjectionMask found = ws.bits != 0 ? run_patterns(text, ws.bits, p) : 0;
  for (std::size_t i = 0; i < ws.nblobs; ++i) {
    const auto [b, e] = ws.blobs[i];
    const std::string decoded = decode_text(text.substr(b, e - b));
    if (decoded.empty()) continue;
    const WordScan inner = scan_words(decoded, p.words);
    if (inner.bits != 0 && run_patterns(decoded, inner.bits, p) != 0)
      found |= mask_of(InjectionHeuristic::encoded_instructions);
  }
  return found;
}

}  // namespace bulwark::policy
