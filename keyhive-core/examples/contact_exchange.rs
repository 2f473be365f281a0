//! Two devices exchange signed contact cards, as two people would by pasting one line each.
//!
//! Run: `cargo run -p keyhive-core --example contact_exchange`

use keyhive_core::identity::{ContactCard, Device};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let alice = Device::generate(Some("Alice's laptop".into()));
    let bob = Device::generate(Some("Bob's phone".into()));
    println!("Alice's device id: {}", alice.id());
    println!("Bob's device id:   {}", bob.id());

    let alice_line = ContactCard::to_line(&alice.contact_card()?);
    let bob_line = ContactCard::to_line(&bob.contact_card()?);
    println!("\nAlice sends Bob this one line:\n  {alice_line}");
    println!("Bob sends Alice this one line:\n  {bob_line}");

    let card_of_alice = ContactCard::from_line(&alice_line)?;
    let card_of_bob = ContactCard::from_line(&bob_line)?;
    println!(
        "\nBob verified Alice's card: id {} name {:?}, {} prekey(s)",
        card_of_alice.id(),
        card_of_alice.name.as_deref().unwrap_or("-"),
        card_of_alice.prekeys.len()
    );
    println!(
        "Alice verified Bob's card: id {} name {:?}, {} prekey(s)",
        card_of_bob.id(),
        card_of_bob.name.as_deref().unwrap_or("-"),
        card_of_bob.prekeys.len()
    );

    // A card altered in transit (here: one character changed) is refused.
    let mut tampered = alice_line.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered)?;
    match ContactCard::from_line(&tampered) {
        Ok(_) => return Err("a tampered card was accepted".into()),
        Err(e) => println!("\nA tampered copy of Alice's card is refused: {e}"),
    }
    Ok(())
}
