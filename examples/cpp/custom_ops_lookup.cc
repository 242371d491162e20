// Finds the custom-op library. A deployed program knows nothing of this repository, so
// the places are the caller's flag, the variable the Python runtime also reads, and the
// exported folder itself (the natural spot to ship the library beside model.onnx).
#include "custom_ops_lookup.h"

#include <cstdlib>
#include <filesystem>

#include "user_error.h"

namespace mamba_example {

constexpr const char* kLibraryFileName = "libmamba_export_ops.so";
constexpr const char* kLibraryEnvVar = "MAMBA_EXPORT_OPS_LIBRARY";
constexpr const char* kBuildHint = "build it with `mamba-export build-ops`";

std::string FindCustomOpsLibrary(const std::string& explicit_path, const std::string& model_dir) {
  namespace fs = std::filesystem;
  if (!explicit_path.empty()) {
    if (!fs::is_regular_file(explicit_path)) {
      throw UserError("--custom-ops: " + explicit_path + " does not exist; " + kBuildHint + " and pass its path");
    }
    return explicit_path;
  }
  if (const char* from_env = std::getenv(kLibraryEnvVar); from_env != nullptr && *from_env != '\0') {
    if (!fs::is_regular_file(from_env)) {
      throw UserError(std::string(kLibraryEnvVar) + "=" + from_env + " does not exist; " + kBuildHint +
                      " and point the variable at it");
    }
    return from_env;
  }
  const std::string beside_model = (fs::path(model_dir) / kLibraryFileName).string();
  if (fs::is_regular_file(beside_model)) return beside_model;
  throw UserError(std::string("this graph needs the SelectiveScan custom-op library and none was given ") +
                  "(no --custom-ops, no " + kLibraryEnvVar + ", no " + beside_model + "); " + kBuildHint +
                  " and pass --custom-ops LIB, or export with --backend standard");
}

}  // namespace mamba_example
