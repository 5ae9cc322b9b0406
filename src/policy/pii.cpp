#include "policy/pii.hpp"

#include <emmintrin.h>
#include <re2/re2.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <cmath>
#include <string>

#include "policy/segmenter.hpp"

namespace bulwark::policy {
namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_upper(char c) noexcept { return c >= 'A' && c <= 'Z'; }
bool is_lower(char c) noexcept { return c >= 'a' && c <= 'z'; }
bool is_alpha(char c) noexcept { return is_upper(c) || is_lower(c); }
bool is_alnum(char c) noexcept { return is_alpha(c) || is_digit(c); }
bool is_word(char c) noexcept { return is_alnum(c) || c == '_'; }
bool is_hex(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
char lower(char c) noexcept { return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

RE2::Options builtin_options() {
  RE2::Options o;
  o.set_encoding(RE2::Options::EncodingLatin1);
  o.set_log_errors(false);
  return o;
}

struct Regexes {
  RE2 email{R"([A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})",
            builtin_options()};
  RE2 phone_intl{R"(\+[1-9](?:[ .\-]?(?:\(\d{1,4}\)|\d{1,5})){1,8})", builtin_options()};
  RE2 phone_nanp{R"((?:1[ .\-])?(?:\([2-9]\d\d\)[ .\-]?|[2-9]\d\d[ .\-])[2-9]\d\d[ .\-]\d{4})",
                 builtin_options()};
  RE2 phone_trunk{R"(0\d{1,4}(?:[ .\-]\d{2,8}){1,5})", builtin_options()};
  RE2 secret{
      R"(sk-[A-Za-z0-9_\-]{20,}|A(?:KIA|SIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,})"
      R"(|github_pat_[A-Za-z0-9_]{22,}|xox[baprs]-[A-Za-z0-9\-]{10,})"
      R"(|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*)",
      builtin_options()};
  RE2 keyword{R"((?i)(?:key|secret|token|passw(?:or)?d|pwd|credential|bearer|auth)[A-Za-z0-9_\-]{0,24})"
              R"(["']?\s{0,4}(?::=|=>|[:=]|is\s)?\s{0,4}["']?$)",
              builtin_options()};
};

const Regexes& regexes() {
  static const Regexes r;
  return r;
}

// Runs `re` over v[from, v.size()) and calls on_match(begin, end) for each candidate; the
// callback returns true to accept (search resumes after it) or false (resumes one byte
// later, so a shorter valid candidate inside a rejected one is still found).
template <class F>
void each_match(const RE2& re, std::string_view v, std::size_t from, F&& on_match) {
  const re2::StringPiece input(v.data(), v.size());
  re2::StringPiece m;
  std::size_t p = from;
  while (p < v.size() && re.Match(input, p, v.size(), RE2::UNANCHORED, &m, 1)) {
    const auto b = static_cast<std::size_t>(m.data() - v.data());
    const std::size_t e = b + m.size();
    p = on_match(b, e) ? std::max(e, b + 1) : b + 1;
  }
}

struct Word {
  std::array<char, 16> buf{};
  std::size_t len = 0;
  std::size_t start = 0;
  std::string_view view() const noexcept { return {buf.data(), len}; }
};

// The lower-cased word before `pos`, skipping spaces and ":#.-" between them.
Word preceding_word(std::string_view v, std::size_t pos) noexcept {
  Word w;
  std::size_t i = pos;
  while (i > 0 && (v[i - 1] == ' ' || v[i - 1] == ':' || v[i - 1] == '#' || v[i - 1] == '.' ||
                   v[i - 1] == '-' || v[i - 1] == '\t'))
    --i;
  const std::size_t e = i;
  while (i > 0 && is_alpha(v[i - 1]) && e - i < w.buf.size()) --i;
  if (i > 0 && is_alpha(v[i - 1])) return w;
  w.start = i;
  w.len = e - i;
  for (std::size_t k = 0; k < w.len; ++k) w.buf[k] = lower(v[i + k]);
  return w;
}

bool in_list(std::string_view w, std::initializer_list<std::string_view> list) noexcept {
  return std::find(list.begin(), list.end(), w) != list.end();
}

// "Order #415-555-2671", "invoice no. 020 7946 0958": reference numbers, not phones.
bool after_reference_word(std::string_view v, std::size_t pos) noexcept {
  if (pos > 0 && v[pos - 1] == '#') return true;
  Word w = preceding_word(v, pos);
  if (in_list(w.view(), {"no", "nr", "number", "num", "id"})) w = preceding_word(v, w.start);
  return in_list(w.view(), {"order", "invoice", "ticket", "tracking", "ref", "reference",
                            "account", "acct", "case", "sku", "serial", "po"});
}

// A number must not be glued to letters or be part of a longer number.
bool number_starts_clean(std::string_view v, std::size_t b) noexcept {
  if (b == 0) return true;
  const char p = v[b - 1];
  if (is_word(p) || p == '+') return false;
  if ((p == '.' || p == '-' || p == '/' || p == ',') && b >= 2 && is_digit(v[b - 2])) return false;
  return true;
}
bool number_ends_clean(std::string_view v, std::size_t e) noexcept {
  if (e >= v.size()) return true;
  const char n = v[e];
  if (is_word(n)) return false;
  if ((n == '.' || n == '-' || n == '/' || n == ',') && e + 1 < v.size() && is_digit(v[e + 1]))
    return false;
  return true;
}

std::size_t count_digits(std::string_view s) noexcept {
  return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), is_digit));
}

// ---- email ----
void scan_email(std::string_view v, std::size_t s, std::vector<Finding>& out) {
  const auto local_char = [](char c) {
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
  };
  each_match(regexes().email, v, s, [&](std::size_t b, std::size_t e) {
    // The pattern bounds the local part at 64; a longer run is not an address.
    if (b > 0 && local_char(v[b - 1])) return false;
    if (e < v.size() && (is_word(v[e]) || v[e] == '-')) return false;
    // A UTF-8 local part ("jörg@"): redact all of it, not just its ASCII tail.
    while (b > s && (static_cast<unsigned char>(v[b - 1]) >= 0x80 || local_char(v[b - 1]))) --b;
    while (b < e && v[b] == '.') ++b;
    const std::string_view m = v.substr(b, e - b);
    const std::string_view tld = m.substr(m.rfind('.') + 1);
    std::array<char, 8> t{};
    if (tld.size() <= t.size()) {
      for (std::size_t i = 0; i < tld.size(); ++i) t[i] = lower(tld[i]);
      if (in_list({t.data(), tld.size()}, {"png", "jpg", "jpeg", "gif", "svg", "webp"}))
        return false;
    }
    if (m.find('@') == 0) return false;
    out.push_back({PiiKind::email, b, e - b});
    return true;
  });
}

// ---- phone ----
bool phone_context_ok(std::string_view v, std::size_t b, std::size_t e) noexcept {
  // Digit groups joined by single spaces before or after belong to a longer number
  // (an IBAN's or account's groups), not to a phone.
  if (b >= 2 && v[b - 1] == ' ' && is_digit(v[b - 2])) return false;
  if (e + 1 < v.size() && v[e] == ' ' && is_digit(v[e + 1])) return false;
  return number_starts_clean(v, b) && number_ends_clean(v, e) && !after_reference_word(v, b);
}

void scan_phone(std::string_view v, std::size_t s, std::vector<Finding>& out) {
  const Regexes& r = regexes();
  each_match(r.phone_intl, v, s, [&](std::size_t b, std::size_t e) {
    if (!phone_context_ok(v, b, e)) return false;
    const std::string_view m = v.substr(b, e - b);
    std::size_t digits = count_digits(m);
    if (m.find("(0)") != std::string_view::npos) --digits;
    if (digits < 8 || digits > 15) return false;
    out.push_back({PiiKind::phone, b, e - b});
    return true;
  });
  each_match(r.phone_nanp, v, s, [&](std::size_t b, std::size_t e) {
    if (!phone_context_ok(v, b, e)) return false;
    std::string_view m = v.substr(b, e - b);
    if (m.size() > 2 && m[0] == '1' && !is_digit(m[1])) m.remove_prefix(2);
    if (m[0] != '(' && m[3] != m[7]) return false;  // 415-555.2671 mixes separators
    out.push_back({PiiKind::phone, b, e - b});
    return true;
  });
  each_match(r.phone_trunk, v, s, [&](std::size_t b, std::size_t e) {
    if (!phone_context_ok(v, b, e)) return false;
    const std::string_view m = v.substr(b, e - b);
    char sep = 0;
    for (char c : m) {
      if (is_digit(c)) continue;
      if (sep != 0 && c != sep) return false;
      sep = c;
    }
    const std::size_t digits = count_digits(m);
    if (digits < 10 || digits > 12) return false;
    out.push_back({PiiKind::phone, b, e - b});
    return true;
  });
}

// ---- card ----
int prefix_value(std::string_view d, std::size_t k) noexcept {
  int v = 0;
  for (std::size_t i = 0; i < k && i < d.size(); ++i) v = v * 10 + (d[i] - '0');
  return v;
}

void scan_card(std::string_view v, std::size_t s, std::vector<Finding>& out) {
  struct Group {
    std::size_t b, e;
    char sep_after;
  };
  std::array<Group, 24> g{};
  std::size_t i = s;
  const std::size_t n = v.size();
  while (i < n) {
    if (!is_digit(v[i])) {
      ++i;
      continue;
    }
    std::size_t ng = 0;
    std::size_t j = i;
    bool overflow = false;
    for (;;) {
      std::size_t k = j;
      while (k < n && is_digit(v[k])) ++k;
      if (ng == g.size()) {
        overflow = true;
        j = k;
        break;
      }
      g[ng] = {j, k, 0};
      ++ng;
      if (k + 1 < n && (v[k] == ' ' || v[k] == '-') && is_digit(v[k + 1])) {
        g[ng - 1].sep_after = v[k];
        j = k + 1;
        continue;
      }
      j = k;
      break;
    }
    const std::size_t run_begin = i;
    i = j;
    if (overflow) {
      while (i < n && (is_digit(v[i]) || v[i] == ' ' || v[i] == '-')) ++i;
      continue;
    }
    // Only the run's own ends need clean boundaries; inner groups are bounded by spaces.
    const bool clean_start = number_starts_clean(v, run_begin);
    const bool clean_end = number_ends_clean(v, g[ng - 1].e);
    std::size_t a = clean_start ? 0 : 1;
    while (a < ng) {
      std::array<char, 20> digits{};
      std::size_t nd = 0;
      std::size_t best = ng;
      for (std::size_t t = a; t < ng; ++t) {
        const std::size_t len = g[t].e - g[t].b;
        if (t > a) {
          if (g[t - 1].sep_after != g[a].sep_after) break;
          if (len < 3 || len > 6 || g[a].e - g[a].b < 3 || g[a].e - g[a].b > 6) break;
        }
        if (nd + len > 19) break;
        for (std::size_t k = g[t].b; k < g[t].e; ++k) digits[nd++] = v[k];
        if (nd >= 13 && (t + 1 < ng || clean_end) && card_number_plausible({digits.data(), nd}))
          best = t;
      }
      if (best == ng) {
        ++a;
        continue;
      }
      out.push_back({PiiKind::card, g[a].b, g[best].e - g[a].b});
      a = best + 1;
    }
  }
}

// ---- ssn ----
void scan_ssn(std::string_view v, std::size_t s, std::vector<Finding>& out) {
  const std::size_t n = v.size();
  for (std::size_t i = s; i + 11 <= n; ++i) {
    if (!is_digit(v[i]) || (i > 0 && is_digit(v[i - 1]))) continue;
    const std::string_view m = v.substr(i, 11);
    bool shape = m[3] == '-' && m[6] == '-';
    for (std::size_t k : {0, 1, 2, 4, 5, 7, 8, 9, 10}) shape = shape && is_digit(m[k]);
    if (!shape || !number_starts_clean(v, i) || !number_ends_clean(v, i + 11)) continue;
    if (!ssn_valid(prefix_value(m, 3), prefix_value(m.substr(4), 2), prefix_value(m.substr(7), 4)))
      continue;
    out.push_back({PiiKind::ssn, i, 11});
    i += 10;
  }
}

// ---- ip ----
void scan_ipv4(std::string_view v, std::size_t s, std::vector<Finding>& out) {
  const std::size_t n = v.size();
  std::size_t i = s;
  while (i < n) {
    if (!is_digit(v[i])) {
      ++i;
      continue;
    }
    std::size_t e = i;
    while (e < n && (is_digit(v[e]) || v[e] == '.')) ++e;
    const std::size_t run_end = e;
    while (e > i && v[e - 1] == '.') --e;
    const std::size_t b = i;
    i = run_end;
    if (b > 0 && (is_word(v[b - 1]) || v[b - 1] == '.')) continue;
    if (e < n && is_word(v[e])) continue;
    if (!is_ipv4(v.substr(b, e - b))) continue;
    const Word w = preceding_word(v, b);
    if (in_list(w.view(), {"version", "ver", "v", "release", "build"})) continue;
    out.push_back({PiiKind::ipv4, b, e - b});
  }
}

void scan_ipv6(std::string_view v, std::size_t s, std::vector<Finding>& out) {
  const std::size_t n = v.size();
  std::size_t i = s;
  while (i < n) {
    if (!is_hex(v[i]) && v[i] != ':') {
      ++i;
      continue;
    }
    std::size_t e = i;
    std::size_t colons = 0;
    bool has_digit = false;
    while (e < n && (is_hex(v[e]) || v[e] == ':' || v[e] == '.')) {
      colons += v[e] == ':';
      has_digit = has_digit || is_digit(v[e]);
      ++e;
    }
    const std::size_t b = i;
    const std::size_t run_end = e;
    i = run_end;
    if (colons < 2 || !has_digit) continue;
    while (e > b && v[e - 1] == '.') --e;
    if (e - b >= 2 && v[e - 1] == ':' && v[e - 2] != ':') --e;
    if (b > 0 && (is_word(v[b - 1]) || v[b - 1] == ':' || v[b - 1] == '.')) continue;
    if (e < n && is_word(v[e])) continue;
    const std::string_view m = v.substr(b, e - b);
    if (!is_ipv6(m)) continue;
    // Two or more groups: "::1" and "a::b" say nothing about a person.
    std::size_t groups = 0;
    for (std::size_t k = 0; k < m.size(); ++k)
      if (is_hex(m[k]) && (k == 0 || m[k - 1] == ':')) ++groups;
    if (groups < 2) continue;
    out.push_back({PiiKind::ipv6, b, e - b});
  }
}

// ---- iban ----
void scan_iban(std::string_view v, std::size_t s, std::vector<Finding>& out) {
  const std::size_t n = v.size();
  for (std::size_t i = s; i + 4 <= n; ++i) {
    if (!is_upper(v[i]) || !is_upper(v[i + 1]) || !is_digit(v[i + 2]) || !is_digit(v[i + 3]))
      continue;
    if (i > 0 && is_alnum(v[i - 1])) continue;
    const std::size_t len = iban_length(v.substr(i, 2));
    if (len == 0) continue;
    std::array<char, 34> compact{};
    std::size_t count = 0;
    std::size_t j = i;
    while (j < n && count < len) {
      const char c = v[j];
      if (is_upper(c) || is_digit(c)) {
        compact[count++] = c;
        ++j;
      } else if (c == ' ' && count % 4 == 0 && j + 1 < n && (is_upper(v[j + 1]) || is_digit(v[j + 1]))) {
        ++j;
      } else {
        break;
      }
    }
    if (count != len || (j < n && is_alnum(v[j]))) continue;
    if (!iban_valid({compact.data(), count})) continue;
    out.push_back({PiiKind::iban, i, j - i});
    i = j - 1;
  }
}

// ---- secrets ----
bool has_secret_prefix(std::string_view seg) noexcept {
  for (std::size_t i = 0; i + 3 <= seg.size(); ++i) {
    const std::string_view r = seg.substr(i);
    switch (seg[i]) {
      case 's':
        if (r.starts_with("sk-")) return true;
        break;
      case 'A':
        if (r.starts_with("AKIA") || r.starts_with("ASIA")) return true;
        break;
      case 'g':
        if (r.size() >= 4 && r[1] == 'h' && r[3] == '_') return true;
        if (r.starts_with("github_pat_")) return true;
        break;
      case 'x':
        if (r.starts_with("xox")) return true;
        break;
      case 'e':
        if (r.starts_with("eyJ")) return true;
        break;
      default: break;
    }
  }
  return false;
}

bool token_char(char c) noexcept {
  return is_alnum(c) || c == '_' || c == '-' || c == '+' || c == '/' || c == '.' || c == '#' ||
         c == '$' || c == '%';
}

bool looks_random(std::string_view tok) noexcept {
  bool lo = false, up = false, dg = false;
  for (char c : tok) {
    lo = lo || is_lower(c);
    up = up || is_upper(c);
    dg = dg || is_digit(c);
  }
  if (int{lo} + int{up} + int{dg} < 2) return false;
  return shannon_entropy(tok) >= 3.0;
}

void scan_secret(std::string_view v, std::size_t s, std::vector<Finding>& out) {
  const std::size_t n = v.size();
  if (has_secret_prefix(v.substr(s))) {
    each_match(regexes().secret, v, s, [&](std::size_t b, std::size_t e) {
      if (b > 0 && is_word(v[b - 1])) return false;
      if (e < n && (is_word(v[e]) || v[e] == '-')) return false;
      const std::string_view m = v.substr(b, e - b);
      if (m.starts_with("sk-")) {
        const std::string_view body = m.substr(3);
        if (std::none_of(body.begin(), body.end(), is_digit) ||
            std::none_of(body.begin(), body.end(), is_alpha))
          return false;
      }
      out.push_back({PiiKind::secret, b, e - b});
      return true;
    });
  }
  // Long random-looking values right after key/secret/token/password.
  std::size_t i = s;
  while (i < n) {
    if (!token_char(v[i])) {
      ++i;
      continue;
    }
    std::size_t e = i;
    while (e < n && token_char(v[e])) ++e;
    while (e < n && v[e] == '=') ++e;
    const std::size_t run_end = e;
    while (e > i && v[e - 1] == '.') --e;
    const std::size_t b = i;
    i = run_end;
    if (e - b < 16 || !looks_random(v.substr(b, e - b))) continue;
    const std::size_t kb = b > kLookbehindBytes ? b - kLookbehindBytes : 0;
    const std::string_view before = v.substr(kb, b - kb);
    if (!RE2::PartialMatch(re2::StringPiece(before.data(), before.size()), regexes().keyword)) continue;
    out.push_back({PiiKind::secret, b, e - b});
  }
}

void resolve_overlaps(std::vector<Finding>& out, std::size_t first) {
  if (out.size() - first < 2) return;
  const auto it = out.begin() + static_cast<std::ptrdiff_t>(first);
  std::sort(it, out.end(), [](const Finding& a, const Finding& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.length > b.length;
  });
  std::size_t w = first;
  std::size_t end = 0;
  for (std::size_t r = first; r < out.size(); ++r) {
    if (w > first && out[r].offset < end) continue;
    end = out[r].offset + out[r].length;
    out[w++] = out[r];
  }
  out.resize(w);
}

}  // namespace

std::string_view name_of(PiiKind kind) noexcept {
  switch (kind) {
    case PiiKind::email: return "email";
    case PiiKind::phone: return "phone";
    case PiiKind::card: return "card";
    case PiiKind::iban: return "iban";
    case PiiKind::ssn: return "ssn";
    case PiiKind::ipv4: return "ipv4";
    case PiiKind::ipv6: return "ipv6";
    case PiiKind::secret: return "secret";
  }
  return "unknown";
}

std::string_view redaction_label(PiiKind kind) noexcept {
  switch (kind) {
    case PiiKind::email: return "[REDACTED:EMAIL]";
    case PiiKind::phone: return "[REDACTED:PHONE]";
    case PiiKind::card: return "[REDACTED:CARD]";
    case PiiKind::iban: return "[REDACTED:IBAN]";
    case PiiKind::ssn: return "[REDACTED:SSN]";
    case PiiKind::ipv4: return "[REDACTED:IPV4]";
    case PiiKind::ipv6: return "[REDACTED:IPV6]";
    case PiiKind::secret: return "[REDACTED:SECRET]";
  }
  return "[REDACTED]";
}

bool luhn_valid(std::string_view digits) noexcept {
  if (digits.empty()) return false;
  int sum = 0;
  bool dbl = false;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (!is_digit(*it)) return false;
    int d = *it - '0';
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
  }
  return sum % 10 == 0;
}

bool card_number_plausible(std::string_view d) noexcept {
  const std::size_t n = d.size();
  if (n < 13 || n > 19 || !std::all_of(d.begin(), d.end(), is_digit)) return false;
  const int p2 = prefix_value(d, 2), p3 = prefix_value(d, 3), p4 = prefix_value(d, 4),
            p6 = prefix_value(d, 6);
  const bool len16_19 = n >= 16;
  bool known = false;
  if (d[0] == '4') known = n == 13 || n == 16 || n == 19;                         // Visa
  else if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) known = n == 16;  // Mastercard
  else if (p2 == 34 || p2 == 37) known = n == 15;                                  // Amex
  else if (p4 >= 2200 && p4 <= 2204) known = len16_19;                             // Mir
  else if (p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65) known = len16_19;  // Discover
  else if (p2 == 62 || (p6 >= 622126 && p6 <= 622925)) known = len16_19;           // UnionPay
  else if ((p3 >= 300 && p3 <= 305) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39)
    known = n >= 14;                                                               // Diners
  else if (p4 >= 3528 && p4 <= 3589) known = len16_19;                             // JCB
  else if (p4 == 5018 || p4 == 5020 || p4 == 5038 || p4 == 5893 || p4 == 6304 || p4 == 6759 ||
           (p4 >= 6761 && p4 <= 6763))
    known = true;                                                                  // Maestro
  return known && luhn_valid(d);
}

std::size_t iban_length(std::string_view cc) noexcept {
  struct Row {
    char a, b;
    std::uint8_t len;
  };
  // ISO 13616 registry (SWIFT), plus long-standing partial members.
  static constexpr Row kRows[] = {
      {'A', 'D', 24}, {'A', 'E', 23}, {'A', 'L', 28}, {'A', 'T', 20}, {'A', 'Z', 28}, {'B', 'A', 20},
      {'B', 'E', 16}, {'B', 'G', 22}, {'B', 'H', 22}, {'B', 'I', 27}, {'B', 'R', 29}, {'B', 'Y', 28},
      {'C', 'H', 21}, {'C', 'R', 22}, {'C', 'Y', 28}, {'C', 'Z', 24}, {'D', 'E', 22}, {'D', 'J', 27},
      {'D', 'K', 18}, {'D', 'O', 28}, {'E', 'E', 20}, {'E', 'G', 29}, {'E', 'S', 24}, {'F', 'I', 18},
      {'F', 'K', 18}, {'F', 'O', 18}, {'F', 'R', 27}, {'G', 'B', 22}, {'G', 'E', 22}, {'G', 'I', 23},
      {'G', 'L', 18}, {'G', 'R', 27}, {'G', 'T', 28}, {'H', 'N', 28}, {'H', 'R', 21}, {'H', 'U', 28},
      {'I', 'E', 22}, {'I', 'L', 23}, {'I', 'Q', 23}, {'I', 'S', 26}, {'I', 'T', 27}, {'J', 'O', 30},
      {'K', 'W', 30}, {'K', 'Z', 20}, {'L', 'B', 28}, {'L', 'C', 32}, {'L', 'I', 21}, {'L', 'T', 20},
      {'L', 'U', 20}, {'L', 'V', 21}, {'L', 'Y', 25}, {'M', 'C', 27}, {'M', 'D', 24}, {'M', 'E', 22},
      {'M', 'K', 19}, {'M', 'N', 20}, {'M', 'R', 27}, {'M', 'T', 31}, {'M', 'U', 30}, {'N', 'I', 28},
      {'N', 'L', 18}, {'N', 'O', 15}, {'O', 'M', 23}, {'P', 'K', 24}, {'P', 'L', 28}, {'P', 'S', 29},
      {'P', 'T', 25}, {'Q', 'A', 29}, {'R', 'O', 24}, {'R', 'S', 22}, {'R', 'U', 33}, {'S', 'A', 24},
      {'S', 'C', 31}, {'S', 'D', 18}, {'S', 'E', 24}, {'S', 'I', 19}, {'S', 'K', 24}, {'S', 'M', 27},
      {'S', 'O', 23}, {'S', 'T', 25}, {'S', 'V', 28}, {'T', 'L', 23}, {'T', 'N', 24}, {'T', 'R', 26},
      {'U', 'A', 29}, {'V', 'A', 22}, {'V', 'G', 24}, {'X', 'K', 20}, {'Y', 'E', 30}};
  if (cc.size() < 2) return 0;
  for (const Row& r : kRows)
    if (r.a == cc[0] && r.b == cc[1]) return r.len;
  return 0;
}

bool iban_valid(std::string_view s) noexcept {
  if (s.size() < 5 || iban_length(s) != s.size()) return false;
  if (!is_digit(s[2]) || !is_digit(s[3])) return false;
  // Rotate the first four characters to the end, letters count as 10..35.
  unsigned rem = 0;
  for (std::size_t k = 0; k < s.size(); ++k) {
    const char c = s[(k + 4) % s.size()];
    if (is_digit(c)) {
      rem = (rem * 10 + static_cast<unsigned>(c - '0')) % 97;
    } else if (is_upper(c)) {
      rem = (rem * 100 + static_cast<unsigned>(c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return rem == 1;
}

bool ssn_valid(int area, int group, int serial) noexcept {
  if (area <= 0 || area == 666 || area >= 900 || area > 999) return false;
  return group > 0 && group <= 99 && serial > 0 && serial <= 9999;
}

bool is_ipv4(std::string_view s) noexcept {
  int parts = 0;
  std::size_t i = 0;
  while (true) {
    std::size_t b = i;
    int value = 0;
    while (i < s.size() && is_digit(s[i]) && i - b < 3) value = value * 10 + (s[i++] - '0');
    const std::size_t len = i - b;
    if (len == 0 || value > 255 || (len > 1 && s[b] == '0')) return false;
    ++parts;
    if (i == s.size()) break;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
  return parts == 4;
}

bool is_ipv6(std::string_view s) noexcept {
  std::size_t i = 0;
  int groups = 0;
  bool compressed = false;
  const std::size_t n = s.size();
  if (n >= 2 && s[0] == ':' && s[1] == ':') {
    compressed = true;
    i = 2;
  }
  while (i < n) {
    const std::size_t b = i;
    while (i < n && is_hex(s[i]) && i - b < 5) ++i;
    if (i < n && s[i] == '.') {
      if (!is_ipv4(s.substr(b))) return false;
      groups += 2;
      i = n;
      break;
    }
    if (i == b || i - b > 4) return false;
    ++groups;
    if (i == n) break;
    if (s[i] != ':') return false;
    ++i;
    if (i < n && s[i] == ':') {
      if (compressed) return false;
      compressed = true;
      ++i;
    } else if (i == n) {
      return false;
    }
  }
  return compressed ? groups <= 7 : groups == 8;
}

double shannon_entropy(std::string_view text) noexcept {
  if (text.empty()) return 0.0;
  std::array<unsigned, 256> counts{};
  for (unsigned char c : text) ++counts[c];
  double h = 0.0;
  const double n = static_cast<double>(text.size());
  for (unsigned c : counts) {
    if (c == 0) continue;
    const double p = c / n;
    h -= p * std::log2(p);
  }
  return h;
}

void scan_segment(std::string_view text, std::size_t begin, std::size_t end, bool pem,
                  std::uint8_t traits, PiiMask enabled, std::vector<Finding>& out) {
  const std::size_t lb = begin > kLookbehindBytes ? begin - kLookbehindBytes : 0;
  const std::string_view v = text.substr(lb, end - lb);
  const std::size_t s = begin - lb;
  const std::size_t len = end - begin;
  const std::size_t first = out.size();
  const auto on = [&](PiiKind k) { return (enabled & mask_of(k)) != 0; };
  if (pem && on(PiiKind::secret)) {
    out.push_back({PiiKind::secret, begin, len});
    return;
  }
  using namespace seg_trait;
  const std::size_t digits = (traits & digit) ? count_digits(v.substr(s)) : 0;
  if (on(PiiKind::email) && (traits & at) && len >= 5) scan_email(v, s, out);
  if (on(PiiKind::ipv6) && (traits & colon) && len >= 6) scan_ipv6(v, s, out);
  if (on(PiiKind::ipv4) && digits >= 4 && (traits & dot) && len >= 7) scan_ipv4(v, s, out);
  if (on(PiiKind::ssn) && digits >= 9 && (traits & dash) && len >= 11) scan_ssn(v, s, out);
  // Every phone form has 10+ digits, or 8+ after a '+'.
  if (on(PiiKind::phone) && len >= 10 &&
      (digits >= 10 || (digits >= 8 && v.substr(s).find('+') != std::string_view::npos)))
    scan_phone(v, s, out);
  if (on(PiiKind::card) && digits >= 13) scan_card(v, s, out);
  if (on(PiiKind::iban) && (traits & digit) && (traits & upper) && len >= 15) scan_iban(v, s, out);
  if (on(PiiKind::secret) && len >= 15) scan_secret(v, s, out);
  for (std::size_t k = first; k < out.size(); ++k) out[k].offset += lb;
  resolve_overlaps(out, first);
}

namespace {

void detect_all_segments(std::string_view text, std::size_t from, PiiMask enabled,
                         std::vector<Finding>& out) {
  std::size_t pos = from;
  while (pos < text.size()) {
    const Step st = next_step(text, pos, true);
    const bool pem = st.kind == StepKind::pem;
    if ((st.kind == StepKind::segment || pem) &&
        segment_may_match(st.traits, st.end - pos, pem, enabled))
      scan_segment(text, pos, st.end, pem, st.traits, enabled, out);
    pos = st.end;
  }
}

}  // namespace

// Walking every segment costs a mispredicted branch per word. Without a PEM header and
// without runs long enough to be force-cut, segments are exactly the maximal runs of
// token bytes and soft spaces, so only the runs holding a byte some detector needs (a
// digit, '@', ':') or 15+ token bytes in a row (secrets) are located and scanned. The
// result is identical to walking every segment.
void detect_pii(std::string_view text, PiiMask enabled, std::vector<Finding>& out) {
  if (enabled == 0) return;
  if (text.find("-----BEGIN ") != std::string_view::npos) {
    detect_all_segments(text, 0, enabled, out);
    return;
  }
  using detail::kByteTable;
  using detail::kSep;
  const std::size_t n = text.size();
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const std::size_t long_run = (enabled & mask_of(PiiKind::secret)) ? 15 : n + 1;
  constexpr std::uint8_t kNeeded = seg_trait::digit | seg_trait::at | seg_trait::colon;
  // Position after the last separator; a select, so the loop carries no multiply chain.
  std::size_t run_start = 0;
  std::size_t floor = 0;  // everything before is done
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t t = kByteTable[byte(i)];
    run_start = (t & kSep) ? i + 1 : run_start;
    if (!((t & kNeeded) != 0 || i + 1 - run_start >= long_run)) continue;
    // Back to the start of the enclosing segment.
    std::size_t b = i;
    while (b > floor && i - b <= kMaxSegmentBytes) {
      const unsigned char p = byte(b - 1);
      if (!(kByteTable[p] & kSep)) {
        --b;
        continue;
      }
      if (p == ' ' && b >= 2 && detail::soft_left(text[b - 2]) && detail::soft_right(text[b])) {
        --b;
        continue;
      }
      break;
    }
    const Step st = next_step(text, b, true);
    if (i - b > kMaxSegmentBytes || st.end - b + 4 >= kMaxSegmentBytes) {
      // A force-cut run: its cuts depend on where it started, so walk from there.
      detect_all_segments(text, floor, enabled, out);
      return;
    }
    if (segment_may_match(st.traits, st.end - b, false, enabled))
      scan_segment(text, b, st.end, false, st.traits, enabled, out);
    floor = st.end;
    i = st.end;  // a separator (or the end): the run restarts after it
    run_start = st.end + 1;
  }
}

namespace {

// Per 16 bytes: which are in [a, b] (both below 0x80; bytes from 0x80 compare negative).
__m128i in_range(__m128i v, char a, char b) noexcept {
  return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(static_cast<char>(a - 1))), _mm_cmplt_epi8(v, _mm_set1_epi8(static_cast<char>(b + 1))));
}
__m128i eq(__m128i v, char c) noexcept { return _mm_cmpeq_epi8(v, _mm_set1_epi8(c)); }

struct ByteMasks {
  std::uint32_t sep, space, needed, soft_left, soft_right;
};

// The classes pii_may_match_bytes reads, for 32 bytes. `sep` is a subset of the
// segmenter's separators (control bytes, DEL, space and the commonest punctuation), so
// runs of the other bytes are never shorter than the segmenter's segments.
ByteMasks classify(const char* p) noexcept {
  ByteMasks m{};
  std::uint32_t* const out[] = {&m.sep, &m.space, &m.needed, &m.soft_left, &m.soft_right};
  for (int half = 0; half < 2; ++half) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * half));
    const __m128i space = eq(v, ' ');
    const __m128i control = _mm_and_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)), _mm_cmpgt_epi8(v, _mm_set1_epi8(-1)));
    const __m128i sep = _mm_or_si128(
        _mm_or_si128(_mm_or_si128(space, control), _mm_or_si128(eq(v, 0x7f), eq(v, '"'))),
        _mm_or_si128(_mm_or_si128(eq(v, ','), eq(v, '\'')), _mm_or_si128(_mm_or_si128(eq(v, ';'), eq(v, '!')), eq(v, '?'))));
    const __m128i digit = in_range(v, '0', '9');
    const __m128i digit_or_upper = _mm_or_si128(digit, in_range(v, 'A', 'Z'));
    const __m128i needed = _mm_or_si128(digit, _mm_or_si128(eq(v, '@'), eq(v, ':')));
    const __m128i left = _mm_or_si128(digit_or_upper, eq(v, ')'));
    const __m128i right = _mm_or_si128(digit_or_upper, _mm_or_si128(eq(v, '('), eq(v, '+')));
    const __m128i all[] = {sep, space, needed, left, right};
    for (int k = 0; k < 5; ++k) *out[k] |= static_cast<std::uint32_t>(_mm_movemask_epi8(all[k])) << (16 * half);
  }
  return m;
}

// True when no segment can hold a finding, judged 32 bytes at a time on the superset of
// segments `classify` gives (a space joins its neighbours as in the segmenter: a digit,
// capital or ')' before, a digit, capital, '(' or '+' after). False when one might.
bool surely_no_segment(std::string_view text, bool secrets) noexcept {
  const std::size_t n = text.size();
  const char* const d = text.data();
  const std::size_t long_run = secrets ? 15 : std::numeric_limits<std::size_t>::max();
  std::size_t run = 0;       // token bytes at the end of the chunks so far
  bool run_needed = false;   // and whether one of them is a digit, '@' or ':'
  std::uint32_t left_carry = 0;  // the previous chunk's last byte may join a space
  alignas(16) char last[32];
  const auto too_long = [&](std::size_t len, bool needed) { return len >= long_run || (needed && len >= 5); };
  for (std::size_t i = 0; i < n; i += 32) {
    const char* chunk = d + i;
    std::uint32_t valid = ~std::uint32_t{0};
    if (n - i < 32) {
      std::memset(last, 0, sizeof last);
      std::memcpy(last, chunk, n - i);
      chunk = last;
      valid = (std::uint32_t{1} << (n - i)) - 1;
    }
    const ByteMasks m = classify(chunk);
    const std::uint32_t right_next =
        (i + 32 < n && detail::soft_right(d[i + 32])) ? std::uint32_t{1} << 31 : 0;
    const std::uint32_t joined = m.space & ((m.soft_left << 1) | left_carry) & ((m.soft_right >> 1) | right_next);
    left_carry = m.soft_left >> 31;
    const std::uint32_t token = ((~m.sep) | joined) & valid;
    const std::uint32_t needed = m.needed & valid;
    if (token == ~std::uint32_t{0}) {
      run += 32;
      run_needed = run_needed || needed != 0;
      if (too_long(run, run_needed)) return false;
      continue;
    }
    // The run that goes on from the previous chunk.
    const auto lead = static_cast<unsigned>(std::countr_one(token));
    if (too_long(run + lead, run_needed || (needed & ((std::uint32_t{1} << lead) - 1)) != 0)) return false;
    // Runs inside the chunk: 5 token bytes in a row around a needed one, or 15 in a row.
    std::uint32_t w5 = token & (token >> 1) & (token >> 2) & (token >> 3) & (token >> 4);
    if ((needed & (w5 | (w5 << 1) | (w5 << 2) | (w5 << 3) | (w5 << 4))) != 0) return false;
    if (secrets) {
      std::uint32_t r = token & (token >> 1);
      r &= r >> 2;
      r &= r >> 4;
      r &= r >> 7;
      if (r != 0) return false;
    }
    const auto tail = static_cast<unsigned>(std::countl_one(token));
    run = tail;
    run_needed = tail != 0 && (needed >> (32 - tail)) != 0;
  }
  return !too_long(run, run_needed);
}

}  // namespace

// Most text has no segment a detector could take: 32 bytes at a time show that without a
// byte-by-byte walk; only text where they cannot takes the exact walk.
bool pii_may_match(std::string_view text, PiiMask enabled) noexcept {
  if (enabled == 0) return false;
  if (text.find("-----") != std::string_view::npos) return true;
  if (surely_no_segment(text, (enabled & mask_of(PiiKind::secret)) != 0)) return false;
  return detail::pii_may_match_bytes(text, enabled);
}

bool detail::pii_may_match_bytes(std::string_view text, PiiMask enabled) noexcept {
  using detail::kByteTable;
  using detail::kSep;
  constexpr std::uint8_t kNeeded = seg_trait::digit | seg_trait::at | seg_trait::colon;
  const std::size_t long_run = (enabled & mask_of(PiiKind::secret)) ? 15 : std::string_view::npos;
  const auto* const p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t len = 0;  // of the segment so far, joined spaces included
  // The length at which the segment may hold a finding: 5 once it has a digit, '@' or ':',
  // long_run before. One comparison a byte instead of two conditions (this loop runs over
  // every byte of every prompt and answer a PII profile guards).
  std::size_t limit = long_run;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t t = kByteTable[p[i]];
    if (t & kSep) {
      if (p[i] == ' ' && len > 0 && i + 1 < n && detail::soft_left(static_cast<char>(p[i - 1])) &&
          detail::soft_right(static_cast<char>(p[i + 1]))) {
        ++len;
        continue;
      }
      len = 0;
      limit = long_run;
      continue;
    }
    ++len;
    if (t & kNeeded) limit = std::min<std::size_t>(limit, 5);
    if (len >= limit) return true;
  }
  return false;
}

std::vector<Finding> detect_pii(std::string_view text, PiiMask enabled) {
  std::vector<Finding> out;
  detect_pii(text, enabled, out);
  return out;
}

}  // namespace bulwark::policy
