// otter CLI — argument parsing (CLI11) and dispatch. main() is `return otter::cli::run(argc, argv);`.
#pragma once

namespace otter::cli {

/// Parses the command line, runs the command, returns the exit code (see format.hpp: 0, 1, 2).
int run(int argc, char** argv);

}  // namespace otter::cli
