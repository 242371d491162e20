// A deliberately tiny JSON reader: it walks the top-level object of export_info.json,
// keeps the scalar values and skips nested objects and arrays. That is all the runner
// needs, and it keeps the example free of a JSON dependency.
#include "export_info.h"

#include <cctype>
#include <fstream>
#include <map>
#include <sstream>

#include "user_error.h"

namespace mamba_example {
namespace {

class TopLevelScalars {
 public:
  TopLevelScalars(std::string text, std::string source) : text_(std::move(text)), source_(std::move(source)) {}

  // Key -> raw scalar text (strings without quotes; true/false/null/numbers as written).
  std::map<std::string, std::string> Parse() {
    std::map<std::string, std::string> scalars;
    Expect('{');
    if (Peek() == '}') return scalars;
    while (true) {
      const std::string key = ReadString();
      Expect(':');
      const char next = Peek();
      if (next == '{' || next == '[') {
        SkipContainer();
      } else if (next == '"') {
        scalars[key] = ReadString();
      } else {
        scalars[key] = ReadBareWord();
      }
      const char separator = Next();
      if (separator == '}') return scalars;
      if (separator != ',') Fail("expected ',' or '}'");
    }
  }

 private:
  [[noreturn]] void Fail(const std::string& what) {
    throw UserError(source_ + " is not valid JSON (" + what + " at byte " + std::to_string(pos_) +
                    "); re-export the folder");
  }
  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  char Peek() {
    SkipSpace();
    if (pos_ >= text_.size()) Fail("unexpected end");
    return text_[pos_];
  }
  char Next() {
    const char c = Peek();
    ++pos_;
    return c;
  }
  void Expect(char wanted) {
    if (Next() != wanted) Fail(std::string("expected '") + wanted + "'");
  }
  std::string ReadString() {
    Expect('"');
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\\') ++pos_;  // keys and values we read are plain ASCII
      if (pos_ < text_.size()) out += text_[pos_++];
    }
    if (pos_ >= text_.size()) Fail("unterminated string");
    ++pos_;
    return out;
  }
  std::string ReadBareWord() {
    SkipSpace();
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '}' &&
           !std::isspace(static_cast<unsigned char>(text_[pos_]))) {
      ++pos_;
    }
    if (start == pos_) Fail("expected a value");
    return text_.substr(start, pos_ - start);
  }
  void SkipContainer() {
    int depth = 0;
    do {
      const char c = Next();
      if (c == '"') {
        --pos_;
        ReadString();
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        --depth;
      }
    } while (depth > 0);
  }

  std::string text_;
  std::string source_;
  size_t pos_ = 0;
};

std::string Require(const std::map<std::string, std::string>& scalars, const std::string& key,
                    const std::string& path) {
  const auto found = scalars.find(key);
  if (found == scalars.end()) {
    throw UserError(path + " has no '" + key + "' key; re-export the folder with this version of mamba-export");
  }
  return found->second;
}

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Format 2 names the graph's first output; format 1 implied it by the exported class.
std::string HeadOutput(const std::map<std::string, std::string>& scalars, const std::string& path) {
  const std::string version = Require(scalars, "format_version", path);
  if (version == "1") {
    const std::string model_class = Require(scalars, "model_class", path);
    if (EndsWith(model_class, "ForCausalLM")) return "logits";
    if (EndsWith(model_class, "Model")) return "last_hidden_state";
    throw UserError(path + " has model_class '" + model_class + "', which names no causal LM or base model");
  }
  if (version != "2") {
    throw UserError(path + " has format_version " + version + "; this runner reads 1 and 2 (re-export the folder)");
  }
  const std::string head = Require(scalars, "head_output", path);
  if (head != "logits" && head != "last_hidden_state") {
    throw UserError(path + " has head_output '" + head + "'; expected logits or last_hidden_state");
  }
  return head;
}

}  // namespace

ExportInfo ReadExportInfo(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    throw UserError(path + " not found: the folder is not a mamba-export output " +
                    "(export it with `mamba-export export`)");
  }
  std::stringstream buffer;
  buffer << file.rdbuf();
  const auto scalars = TopLevelScalars(buffer.str(), path).Parse();

  ExportInfo info;
  const std::string needs = Require(scalars, "needs_custom_ops", path);
  if (needs != "true" && needs != "false") {
    throw UserError(path + ": needs_custom_ops must be true or false, got " + needs);
  }
  info.needs_custom_ops = needs == "true";
  info.backend = Require(scalars, "backend", path);
  info.head_output = HeadOutput(scalars, path);
  info.dtype = Require(scalars, "dtype", path);
  return info;
}

}  // namespace mamba_example
