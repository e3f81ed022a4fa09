// Numbered, append-only schema migrations. Each engine supplies its SQL per version.
export interface Migration {
  version: number;
  name: string;
  up: string;
  down: string;
}
