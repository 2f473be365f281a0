//! The `keyhive` command.

fn main() {
    println!("keyhive {}", env!("CARGO_PKG_VERSION"));
}
