from numbias.cli import main

main()
