// main.cpp: entry point.
int main() { return 0; }
