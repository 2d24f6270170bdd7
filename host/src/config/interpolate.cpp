#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "config/detail.hpp"

namespace crmhost::config::detail {

namespace {

bool valid_variable_name(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name.front()))) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

std::optional<std::string> read_file(const std::filesystem::path &path, std::string &why) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    why = "it is a directory";
    return std::nullopt;
  }
  if (!std::filesystem::exists(path, ec)) {
    why = "no such file";
    return std::nullopt;
  }
  // Only a regular file (symlinks followed): a device (/dev/zero) never ends and a FIFO blocks.
  if (!std::filesystem::is_regular_file(path, ec)) {
    why = "it is not a regular file";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = "permission denied";
    return std::nullopt;
  }
  // Secrets and certificates are small; read one byte past the limit to tell a bigger file.
  std::string text(kMaxInterpolatedFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) {
    why = "read error";
    return std::nullopt;
  }
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxInterpolatedFileBytes) {
    why = "it is larger than " + std::to_string(kMaxInterpolatedFileBytes) + " bytes";
    return std::nullopt;
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return text;
}

thread_local bool t_unset_variables_empty = false;

}  // namespace

UnsetVariablesEmpty::UnsetVariablesEmpty(bool on) : previous_(t_unset_variables_empty) {
  t_unset_variables_empty = on;
}
UnsetVariablesEmpty::~UnsetVariablesEmpty() {
  t_unset_variables_empty = previous_;
}

std::optional<Interpolated> interpolate(std::string_view text,
                                        const std::filesystem::path &base_dir,
                                        std::vector<std::string> &errors) {
  Interpolated result;
  const size_t errors_before = errors.size();
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t dollar = text.find('$', pos);
    if (dollar == std::string_view::npos) {
      result.text.append(text.substr(pos));
      break;
    }
    result.text.append(text.substr(pos, dollar - pos));
    if (text.substr(dollar, 3) == "$${") {  // escaped: a literal "${"
      result.text.append("${");
      pos = dollar + 3;
      continue;
    }
    if (text.substr(dollar, 2) != "${") {  // a lone '$' is just a character
      result.text.push_back('$');
      pos = dollar + 1;
      continue;
    }
    const size_t close = text.find('}', dollar + 2);
    if (close == std::string_view::npos) {
      errors.push_back("unterminated \"${\" (write \"$${\" for a literal \"${\")");
      return std::nullopt;
    }
    result.substituted = true;
    const std::string_view expression = text.substr(dollar + 2, close - dollar - 2);
    pos = close + 1;
    if (expression.substr(0, 5) == "file:") {
      const std::filesystem::path file(std::string(expression.substr(5)));
      if (file.empty()) {
        errors.push_back("\"${file:}\" names no file");
        continue;
      }
      const auto path = file.is_absolute() ? file : base_dir / file;
      std::string why;
      if (auto content = read_file(path, why))
        result.text.append(*content);
      else
        errors.push_back("cannot read " + path.string() + " for ${file:...}: " + why);
      continue;
    }
    const size_t colon = expression.find(":-");
    const std::string name(expression.substr(0, colon));
    if (!valid_variable_name(name)) {
      errors.push_back("\"${" + std::string(expression.substr(0, colon)) +
                       "}\" is not a valid variable reference (use ${NAME}, ${NAME:-default} or "
                       "${file:/path})");
      continue;
    }
    const char *value = std::getenv(name.c_str());
    if (value && *value) {
      result.text.append(value);
    } else if (colon != std::string_view::npos) {
      result.text.append(expression.substr(colon + 2));
    } else if (value || t_unset_variables_empty) {
      // Set but empty, without a default: the empty string, as in the shell.
    } else {
      errors.push_back("environment variable " + name + " is not set");
    }
  }
  if (errors.size() != errors_before) return std::nullopt;
  return result;
}

}  // namespace crmhost::config::detail
