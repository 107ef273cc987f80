// otter — the command-line pusher: `otter push FILE --to HOST[:PORT] --key-file FILE`, `otter stat NAME ...`.
#include "app.hpp"

int main(int argc, char** argv) { return otter::cli::run(argc, argv); }
